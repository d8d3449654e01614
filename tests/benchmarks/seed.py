"""A team's long history, seeded in bulk for `make bench` and for profiling.

    python -m tests.benchmarks.seed --requests 100000 --user-requests 10000 \
        [--users 50] [--username bench] [--password PW] [--out seed.json]

Run with the environment of the site it seeds (bananaweb.settings, DATABASE_URL,
MEDIA_ROOT), on a database without the measured user yet. It makes `--users`
people, the measured one (`--username`) owning `--user-requests` of the
`--requests` image requests, the rest shared among the others; every request has
one GeneratedImage row. The image files are a few real PNGs and their thumbnails,
stored once through the storage API and shared by every row, so that an image or
thumbnail URL serves a real file. Statuses are mostly completed, some failed, a
few outcome unknown, and each person's newest one or two are still in flight;
about 2% are shared with the team. Prompts are drawn from word lists, so that a
search for one word (SEARCH_WORD) finds about one request in forty.

It prints what it made and how long it took; `--out` also writes, as JSON, what a
benchmark needs to address it (credentials, an API token, ids).
"""

import argparse
import enum
import io
import json
import os
import random
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bananaweb.settings")
django.setup()

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, models, transaction
from django.db.models import Count
from django.utils import timezone
from PIL import Image
from psycopg import sql
from psycopg.types.json import Jsonb

from bananaweb import images, options
from bananaweb.gateway import services as gateway_services
from bananaweb.gateway.models import GatewayTask
from bananaweb.models import GeneratedImage, ImageRequest, UserQuota

RANDOM_SEED = 13
BATCH = 5000
HISTORY_DAYS = 365
TEAM_SHARE = 0.02  # of every request, shared with the team
SEARCH_WORD = "lighthouse"

SUBJECTS = (
    "lighthouse", "fox", "teapot", "bicycle", "cathedral", "octopus", "robot",
    "sailboat", "owl", "castle", "cactus", "violin", "dragon", "lantern", "tram",
    "whale", "mushroom", "astronaut", "windmill", "tiger", "library", "hummingbird",
    "submarine", "greenhouse", "samurai", "jellyfish", "train station", "orchard",
    "typewriter", "glacier", "market stall", "hot air balloon", "koi pond",
    "bookshop", "lemur", "waterfall", "clocktower", "bonsai tree", "canyon", "ferry",
)  # fmt: skip
ADJECTIVES = (
    "tiny", "ancient", "glowing", "rusty", "crystal", "misty", "neon", "golden",
    "overgrown", "floating", "wooden", "frozen", "cheerful", "abandoned", "velvet",
    "mechanical", "paper", "shimmering", "giant", "sleepy", "stormy", "pastel",
    "baroque", "minimalist", "steampunk", "autumnal", "moonlit", "sunlit", "copper",
    "translucent",
)  # fmt: skip
SETTINGS = (
    "on a cliff at dawn", "in a rainy city street", "under a starry sky",
    "in a desert oasis", "on a snowy mountain", "inside a busy kitchen",
    "in a flooded forest", "on the surface of the moon", "in a quiet harbour",
    "at a night market", "in an underwater cave", "on a rooftop garden",
    "in a foggy valley", "beside a frozen lake", "in a sunflower field",
    "inside a glass dome", "on a windswept beach", "in a jungle clearing",
    "at the edge of the world", "in a candlelit hall", "on a floating island",
    "in a cyberpunk alley", "beside a volcano", "in a snow globe", "on a chessboard",
    "in a paper city", "inside a seashell", "over rolling hills",
    "in a botanical garden", "at a train platform",
)  # fmt: skip
STYLES = (
    "watercolour", "oil painting", "35mm photograph", "isometric render",
    "pixel art", "ukiyo-e woodblock print", "charcoal sketch", "studio lighting",
    "cinematic, wide angle", "low-poly 3D", "children's book illustration",
    "art nouveau poster", "macro photography", "claymation", "blueprint drawing",
    "stained glass", "vaporwave", "gouache", "tilt-shift photo", "comic book panel",
)  # fmt: skip
FAILURES = (
    (ImageRequest.ErrorCode.REJECTED, "Refused by the image service: unsafe content."),
    (ImageRequest.ErrorCode.UPSTREAM_FAILED, "Failed upstream: generation error."),
    (ImageRequest.ErrorCode.DEADLINE, "No result after 15 minutes."),
    (ImageRequest.ErrorCode.IMAGE_FETCH, "The image could not be saved."),
)
# A few real pictures, each stored once with its thumbnail: (colour, size).
PICTURES = (
    ((214, 160, 40), (640, 640)),
    ((40, 120, 200), (768, 512)),
    ((60, 160, 90), (512, 768)),
    ((180, 60, 120), (640, 480)),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.seed")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--user-requests", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--username", default="bench")
    parser.add_argument(
        "--password", default="", help="the measured user's (random if not given)"
    )
    parser.add_argument(
        "--out", type=Path, help="write what a benchmark needs, as JSON"
    )
    args = parser.parse_args(argv)
    if not 0 < args.user_requests <= args.requests:
        parser.error("--user-requests must be between 1 and --requests.")
    if args.users < 2:
        parser.error("--users must be at least 2 (the measured one and another).")
    return args


def picture(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    """A real PNG: a gradient, so the thumbnail is not a trivial one."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    tint = Image.new("RGB", size, colour)
    output = io.BytesIO()
    Image.blend(image, tint, 0.6).save(output, "PNG")
    return output.getvalue()


def store_pictures() -> list[dict]:
    """The shared files, through the storage API: GeneratedImage field values."""
    stored = []
    for number, (colour, size) in enumerate(PICTURES):
        content = picture(colour, size)
        thumbnail = images.make_thumbnail(
            content, size=settings.BANANAWEB_THUMBNAIL_SIZE
        )
        folder = f"images/bench/{number}"
        stored.append(
            {
                "file": default_storage.save(
                    f"{folder}/image-0.png", ContentFile(content)
                ),
                "thumbnail": default_storage.save(
                    f"{folder}/thumb-0.webp", ContentFile(thumbnail)
                ),
                "content_type": "image/png",
                "width": size[0],
                "height": size[1],
                "size_bytes": len(content),
            }
        )
    return stored


def make_users(args: argparse.Namespace, password: str) -> list:
    """The measured user first, then the others (member01…), one password hash."""
    User = get_user_model()
    if User.objects.filter(username=args.username).exists():
        sys.exit(f"{args.username!r} exists already: seed an empty database.")
    hashed = make_password(password)  # once: hashing is slow on purpose
    names = [args.username] + [f"member{n:02d}" for n in range(1, args.users)]
    User.objects.bulk_create([User(username=name, password=hashed) for name in names])
    by_name = {user.username: user for user in User.objects.filter(username__in=names)}
    return [by_name[name] for name in names]


def owners(args: argparse.Namespace, users: list, rng: random.Random) -> list:
    """Each request's owner, newest first: the measured user's share among the rest."""
    others = users[1:]
    rest = args.requests - args.user_requests
    chosen = [users[0]] * args.user_requests + [
        others[n % len(others)] for n in range(rest)
    ]
    rng.shuffle(chosen)
    return chosen


def options_for(model: str, rng: random.Random) -> tuple[str, str]:
    """An aspect ratio and resolution the model offers (or blank, its default)."""
    spec = options.MODELS[model]
    ratio = rng.choice(("", *spec.aspect_ratios))
    resolution = rng.choice(("", *spec.resolutions)) if spec.resolutions else ""
    return ratio, resolution


def build_request(
    user_id: int, created_at, *, in_flight: str, rng: random.Random, number: int
) -> dict:
    """One request's field values (by attname); the rest take their defaults."""
    model = rng.choice(tuple(options.MODELS))
    aspect_ratio, resolution = options_for(model, rng)
    editing = rng.random() < 0.1
    prompt = (
        f"A {rng.choice(ADJECTIVES)} {rng.choice(SUBJECTS)} "
        f"{rng.choice(SETTINGS)}, {rng.choice(STYLES)}"
    )
    fields = {
        "user_id": user_id,
        "source": ImageRequest.Source.API
        if rng.random() < 0.15
        else ImageRequest.Source.WEB,
        "action": options.Action.EDIT if editing else options.Action.GENERATE,
        "prompt": prompt,
        "model": model,
        "aspect_ratio": aspect_ratio,
        "resolution": resolution,
        "image_urls": [f"https://images.example.com/in/{number}.png"]
        if editing
        else [],
        "visibility": ImageRequest.Visibility.TEAM
        if rng.random() < TEAM_SHARE
        else ImageRequest.Visibility.PRIVATE,
        "created_at": created_at,
        "due_at": created_at,
    }
    submitted = created_at + timedelta(seconds=rng.uniform(0.2, 2))
    finished = submitted + timedelta(seconds=rng.uniform(8, 90))
    if in_flight == ImageRequest.Status.QUEUED:
        return fields | {"status": ImageRequest.Status.QUEUED}
    accepted = {
        "upstream_task_id": f"bench-{number}",
        "submitted_at": submitted,
        "poll_count": rng.randint(2, 8),
    }
    if in_flight:
        return (
            fields
            | accepted
            | {
                "status": ImageRequest.Status.IN_PROGRESS,
                "upstream_status": options.UpstreamStatus.PROCESSING,
            }
        )
    roll = rng.random()
    if roll < 0.9:
        return (
            fields
            | accepted
            | {
                "status": ImageRequest.Status.COMPLETED,
                "upstream_status": options.UpstreamStatus.COMPLETED,
                "result": {"imageUrls": [f"https://cdn.example.com/out/{number}.png"]},
                "finished_at": finished,
            }
        )
    if roll < 0.99:
        code, message = rng.choice(FAILURES)
        return (
            fields
            | accepted
            | {
                "status": ImageRequest.Status.FAILED,
                "upstream_status": options.UpstreamStatus.FAILED,
                "error_code": code,
                "error_message": message,
                "counts_toward_quota": code != ImageRequest.ErrorCode.REJECTED,
                "finished_at": finished,
            }
        )
    return fields | {
        "status": ImageRequest.Status.UNKNOWN,
        "error_code": ImageRequest.ErrorCode.UNKNOWN_OUTCOME,
        "error_message": "We sent this request but got no usable answer (timeout).",
        "submitted_at": submitted,
        "finished_at": finished,
    }


def _column_value(field: models.Field, row: dict, now):
    """A row's value for a column as COPY takes it: the model's default where the
    row has none (so a field added later is seeded too), JSON wrapped, enums plain."""
    if field.attname in row:
        value = row[field.attname]
    elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        value = now
    else:
        value = field.get_default()
    if isinstance(field, models.JSONField):
        return Jsonb(value)
    return value.value if isinstance(value, enum.Enum) else value


def insert_rows(model: type[models.Model], rows: list[dict]) -> None:
    """Rows in one COPY on PostgreSQL (Django's bulk_create spends most of its time
    building SQL: minutes for 100,000 rows), bulk_create elsewhere."""
    if connection.vendor != "postgresql":
        model.objects.bulk_create((model(**row) for row in rows), batch_size=BATCH)
        return
    table = model._meta.db_table
    with connection.cursor() as cursor:
        columns = {
            column.name
            for column in connection.introspection.get_table_description(cursor, table)
        }
    # The table's columns only: a field whose migration is still to come is left out.
    fields = [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key and field.column in columns
    ]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(field.column) for field in fields),
    )
    now = timezone.now()
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([_column_value(field, row, now) for field in fields])


def seed(args: argparse.Namespace, password: str) -> dict:
    rng = random.Random(RANDOM_SEED)
    pictures = store_pictures()
    now = timezone.now()
    step = timedelta(days=HISTORY_DAYS) / args.requests
    with transaction.atomic():
        users = make_users(args, password)
        measured = users[0]
        UserQuota.objects.create(user=measured, daily_limit=10_000_000)
        first_id = (
            ImageRequest.objects.order_by("-pk").values_list("pk", flat=True).first()
            or 0
        ) + 1
        # Each person's newest request is in progress and their second newest
        # queued: a few in flight, where they are in life (the newest).
        newest_seen: dict[int, int] = {}
        rows = []
        for number, user in enumerate(owners(args, users, rng)):
            seen = newest_seen.get(user.pk, 0)
            newest_seen[user.pk] = seen + 1
            in_flight = {
                0: ImageRequest.Status.IN_PROGRESS,
                1: ImageRequest.Status.QUEUED,
            }.get(seen, "")
            created_at = now - step * number - timedelta(seconds=rng.uniform(0, 1))
            rows.append(
                build_request(
                    user.pk, created_at, in_flight=in_flight, rng=rng, number=number
                )
            )
        # Oldest first, so that ids grow with time as they do in life.
        rows.reverse()
        insert_rows(ImageRequest, rows)
        made = ImageRequest.objects.filter(pk__gte=first_id, user__in=users)
        ids = list(made.order_by("pk").values_list("pk", flat=True))
        insert_rows(
            GeneratedImage,
            [
                {"image_request_id": pk, "position": 0, **pictures[pk % len(pictures)]}
                for pk in ids
            ],
        )
        api_token, raw_token = gateway_services.api_token_create(
            user=measured, name="bench"
        )
        mine = made.filter(user=measured).order_by("-pk")
        polled = mine.filter(status=ImageRequest.Status.COMPLETED).first()
        ImageRequest.objects.filter(pk=polled.pk).update(source=ImageRequest.Source.API)
        gateway_task = GatewayTask.objects.create(
            image_request=polled, api_token=api_token
        )
    # Statistics and the visibility map, as autovacuum would give a settled database
    # (index-only scans). VACUUM cannot run in a transaction: a test's seed skips it.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
            )
    completed = (
        mine.filter(status=ImageRequest.Status.COMPLETED).exclude(pk=polled.pk).first()
    )
    by_status = dict(made.values_list("status").annotate(n=Count("pk")).order_by())
    return {
        "username": measured.username,
        "user_id": measured.pk,
        "password": password,
        "api_token": raw_token,
        "gateway_task_id": str(gateway_task.task_id),
        "completed_request": completed.pk,
        "completed_image": completed.images.get().pk,
        "in_flight_request": mine.filter(status=ImageRequest.Status.IN_PROGRESS)
        .first()
        .pk,
        "last_seeded_request": ids[-1],
        "search_word": SEARCH_WORD,
        "requests": len(ids),
        "user_requests": mine.count(),
        "users": len(users),
        "team_visible": made.filter(visibility=ImageRequest.Visibility.TEAM).count(),
        "in_flight": made.filter(status__in=ImageRequest.IN_FLIGHT).count(),
        "by_status": by_status,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    password = args.password or secrets.token_urlsafe(16)
    started = time.monotonic()
    made = seed(args, password)
    seconds = time.monotonic() - started
    print(
        f"Seeded {made['requests']:,} requests, each with an image row, for "
        f"{made['users']} users ({made['user_requests']:,} for "
        f"{made['username']!r}) in {seconds:.1f} s on {connection.vendor}.\n"
        f"  by status: {made['by_status']}\n"
        f"  team-visible: {made['team_visible']:,}; in flight: {made['in_flight']}; "
        f"search word: {made['search_word']!r}"
    )
    if not args.password:
        print(f"  {made['username']}'s password: {password}")
    if args.out:
        args.out.write_text(json.dumps(made | {"seconds": round(seconds, 1)}))
        print(f"  details: {args.out}")


if __name__ == "__main__":
    main()
