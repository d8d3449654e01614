"""The load run's users: the team, signing in and making images through the web
form (as htmx sends it) and through the gateway API, then watching them finish.

Run by tests/load/run.py (`make loadtest`), which seeds the accounts and reads:

- LOAD_ACCOUNTS: a JSON file, [{"username", "token" (or null)}, ...]
- LOAD_PASSWORD: every account's password
- LOAD_RECORD: where to write, at the end, every submission made (its prompt,
  web or API, the status it was answered with, None if the run stopped first),
  and how many answers were 5xx or none at all
- LOAD_RUN_ID: put in every prompt, which is unique per submission so that the
  simulator's accepted_by_prompt shows a request sent upstream twice.
"""

import itertools
import json
import os
import random
import re
import time
import uuid
from pathlib import Path

from locust import HttpUser, between, events, task

from tests.load.verdicts import api_body, web_form

ACCOUNTS: list[dict] = json.loads(Path(os.environ["LOAD_ACCOUNTS"]).read_text())
PASSWORD = os.environ["LOAD_PASSWORD"]
RECORD = Path(os.environ["LOAD_RECORD"])
RUN_ID = os.environ.get("LOAD_RUN_ID", uuid.uuid4().hex[:6])

POLL_EVERY = 2  # seconds, as the page's hx-trigger="every 2s"
MAX_POLLS = 40  # then the user moves on; the runner still waits for the request
API_TERMINAL = {"completed", "failed", "cancelled", "timeout"}
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CARD_ID = re.compile(r'id="request-(\d+)"')
THUMBNAIL = re.compile(r'<img src="(/requests/\d+/images/\d+/thumbnail/)"')
ASPECT_RATIOS = ("1:1", "16:9", "3:4")

_seats = itertools.count()
submissions: list[dict] = []
# Answers as the users saw them: 5xx, and none at all (a connection closed or reset).
answers = {"server_errors": 0, "no_answer": 0}


def new_prompt(username: str, via: str) -> str:
    return f"Load {RUN_ID} {username} {via} {uuid.uuid4().hex}: a banana on a bicycle"


@events.request.add_listener
def count_answer(response=None, **kwargs) -> None:
    status = getattr(response, "status_code", None)
    if not status:  # Locust's stand-in response for a connection error
        answers["no_answer"] += 1
    elif status >= 500:
        answers["server_errors"] += 1


@events.quitting.add_listener
def write_record(environment, **kwargs) -> None:
    RECORD.write_text(json.dumps({"submissions": submissions, **answers}))


class TeamMember(HttpUser):
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.client.trust_env = False  # loopback only: never through a proxy
        self.account = ACCOUNTS[next(_seats) % len(ACCOUNTS)]
        self.sign_in()

    def sign_in(self) -> None:
        page = self.client.get("/accounts/login/", name="sign-in page")
        match = CSRF_INPUT.search(page.text)
        with self.client.post(
            "/accounts/login/",
            data={
                "username": self.account["username"],
                "password": PASSWORD,
                "csrfmiddlewaretoken": match[1] if match else "",
                "next": "/",
            },
            name="sign in",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != 302:
                response.failure(f"sign-in answered {response.status_code}")
        self.client.get("/", name="index")

    @task
    def make_an_image(self) -> None:
        if self.account["token"] and random.random() < 0.5:
            self.through_api()
        else:
            self.through_web()

    # The web form, as htmx posts it

    def through_web(self) -> None:
        prompt = new_prompt(self.account["username"], "web")
        submission = {"prompt": prompt, "via": "web", "status": None}
        submissions.append(submission)
        with self.client.post(
            "/requests/",
            data=web_form(prompt, random.choice(ASPECT_RATIOS), str(uuid.uuid4())),
            headers={
                "HX-Request": "true",
                "HX-Current-URL": self.host + "/",
                "X-CSRFToken": self.client.cookies.get("csrftoken", ""),
            },
            name="web: submit",
            catch_response=True,
        ) as response:
            submission["status"] = response.status_code
            card = CARD_ID.search(response.text or "")
            if response.status_code != 200 or card is None:
                response.failure(f"no new card ({response.status_code})")
                return
        self.watch_card(int(card[1]))

    def watch_card(self, pk: int) -> None:
        for _ in range(MAX_POLLS):
            time.sleep(POLL_EVERY)
            # The page's one poll (request-updates), here for its one card in flight.
            response = self.client.get(
                f"/requests/updates/?ids={pk}",
                headers={"HX-Request": "true"},
                name="web: poll",
            )
            if response.status_code == 286 or "hx-trigger" not in response.text:
                if thumbnail := THUMBNAIL.search(response.text):
                    self.client.get(thumbnail[1], name="web: thumbnail")
                return

    # The gateway API, as a script uses it

    def through_api(self) -> None:
        prompt = new_prompt(self.account["username"], "api")
        submission = {"prompt": prompt, "via": "api", "status": None}
        submissions.append(submission)
        headers = {"Authorization": f"Bearer {self.account['token']}"}
        with self.client.post(
            "/api/gemini/image/generate",
            json=api_body(prompt, random.choice(ASPECT_RATIOS)),
            headers=headers | {"Idempotency-Key": str(uuid.uuid4())},
            name="api: generate",
            catch_response=True,
        ) as response:
            submission["status"] = response.status_code
            try:
                task_id = response.json()["taskId"]
            except (ValueError, KeyError, TypeError):
                response.failure(f"no taskId ({response.status_code})")
                return
        for _ in range(MAX_POLLS):
            time.sleep(POLL_EVERY)
            response = self.client.get(
                "/api/gemini/task/result",
                params={"taskId": task_id},
                headers=headers,
                name="api: task result",
            )
            try:
                body = response.json()
            except ValueError:
                continue
            if body.get("status") in API_TERMINAL:
                images = (body.get("result") or {}).get("images") or []
                if images:
                    self.client.get(
                        images[0]["url"], headers=headers, name="api: image"
                    )
                return
