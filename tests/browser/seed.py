"""Data for the browser tests, written straight into the running stack's database.

Run by the stack fixture as `python -m tests.browser.seed ...` with the stack's
environment, so it uses the stack's settings, SQLite file and media folder:

    users NAME...                  create users, all with the tests' password
    history NAME COUNT [--live]    give NAME a history: completed requests with images,
                                   every seventh one failed; --live adds one still in flight
"""

import argparse
import os
import sys
from datetime import timedelta

PROMPTS = [
    "A banana surfing a turquoise wave at dawn",
    "Watercolour of a fruit market in Lisbon, morning light",
    "A cosy reading nook with a sleeping cat, isometric",
    "Paper-cut mountains under a pale yellow sky",
    "A lighthouse made of bananas, storm clouds, cinematic",
    "Minimal poster of a bicycle, two colours",
]
FAILURE = "The image service could not make this image: The model refused to draw this prompt (simulated failure)"


def create_users(names: list[str], password: str) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    hashed = make_password(password)  # once: hashing is slow on purpose
    User = get_user_model()
    for name in names:
        User.objects.update_or_create(username=name, defaults={"password": hashed})


def create_history(username: str, count: int, *, live: bool) -> None:
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from bananaweb import images, options
    from bananaweb.models import GeneratedImage, ImageRequest
    from bananaweb.simulator import drawing

    user = get_user_model().objects.get(username=username)
    pictures = {}
    now = timezone.now()
    for index in range(count, 0, -1):  # oldest first, so primary keys follow time
        prompt = PROMPTS[index % len(PROMPTS)]
        created = now - timedelta(minutes=23 * index + 5)
        image_request = ImageRequest.objects.create(
            user=user,
            action=options.Action.GENERATE,
            prompt=prompt,
            model=options.Model.NANO_BANANA_FAST,
            aspect_ratio="1:1" if index % 3 else "16:9",
            status=ImageRequest.Status.COMPLETED,
            upstream_task_id=f"seed-{username}-{index}",
            upstream_status="completed",
            created_at=created,
            submitted_at=created,
            finished_at=created + timedelta(seconds=9 + index % 7),
            counts_toward_quota=False,
        )
        if index % 7 == 3:
            image_request.status = ImageRequest.Status.FAILED
            image_request.upstream_status = "failed"
            image_request.error_code = "upstream_failed"
            image_request.error_message = FAILURE
            image_request.save()
            continue
        key = (prompt, image_request.aspect_ratio)
        if key not in pictures:
            png = drawing.draw_png(
                text=prompt,
                model=image_request.model,
                aspect_ratio=image_request.aspect_ratio,
                resolution="",
            )
            verified = images.verify_image(png, max_bytes=options.MAX_IMAGE_BYTES)
            pictures[key] = (verified, images.make_thumbnail(png, size=384))
        verified, thumbnail = pictures[key]
        image = GeneratedImage(
            image_request=image_request,
            source_url=f"http://127.0.0.1:9/images/seed-{index}.png",
            content_type=verified.content_type,
            width=verified.width,
            height=verified.height,
            size_bytes=len(verified.content),
        )
        image.file.save("image-0.png", ContentFile(verified.content), save=False)
        image.thumbnail.save("thumb-0.webp", ContentFile(thumbnail), save=False)
        image.save()
    if live:
        # Never sent, so it stays in flight: a steady in-flight card for screenshots.
        ImageRequest.objects.create(
            user=user,
            action=options.Action.GENERATE,
            model=options.Model.NANO_BANANA_PRO,
            resolution="2K",
            prompt="A banana-shaped airship drifting over a foggy harbour, golden hour",
            status=ImageRequest.Status.IN_PROGRESS,
            upstream_status="processing",
            upstream_task_id=f"seed-{username}-live",
            created_at=now - timedelta(seconds=12),
            submitted_at=now - timedelta(seconds=11),
            counts_toward_quota=False,
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.seed")
    commands = parser.add_subparsers(dest="command", required=True)
    users = commands.add_parser("users")
    users.add_argument("names", nargs="+")
    history = commands.add_parser("history")
    history.add_argument("username")
    history.add_argument("count", type=int)
    history.add_argument("--live", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "users":
        create_users(args.names, os.environ["BANANAWEB_TEST_PASSWORD"])
    else:
        create_history(args.username, args.count, live=args.live)


if __name__ == "__main__":
    import django

    django.setup()
    main(sys.argv[1:])
