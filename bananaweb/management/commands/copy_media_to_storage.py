"""Copy the media kept in a local folder into the configured media storage.

For moving to a bucket: set AWS_STORAGE_BUCKET_NAME (and the rest, README),
then run this once before the first start and once more after the last local
write. Every file keeps its name, so the rows that name it keep working. A file
already stored with the same size is skipped, so it can be run again; a stored
one of another size is left as it is and reported. Nothing is ever deleted.
"""

from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Copy local media files (MEDIA_ROOT, or --source) into the media storage "
        "(the S3 bucket when AWS_STORAGE_BUCKET_NAME is set), under the same names. "
        "Files already there with the same size are skipped; nothing is deleted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--source",
            type=Path,
            help="The folder to copy from (default: MEDIA_ROOT).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Say what would be copied, and copy nothing.",
        )

    def handle(self, *, source: Path | None, dry_run: bool, **options) -> None:
        source = Path(source or settings.MEDIA_ROOT).resolve()
        if not source.is_dir():
            raise CommandError(f"{source} is not a folder.")
        if (
            isinstance(default_storage, FileSystemStorage)
            and Path(default_storage.location).resolve() == source
        ):
            raise CommandError(
                f"The media storage is {source} itself: set AWS_STORAGE_BUCKET_NAME "
                "(README, Configuration) to copy into a bucket."
            )
        copied = skipped = copied_bytes = 0
        differ: list[str] = []
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            name = path.relative_to(source).as_posix()
            size = path.stat().st_size
            if default_storage.exists(name):
                if default_storage.size(name) == size:
                    skipped += 1
                else:
                    differ.append(name)
                continue
            if not dry_run:
                with path.open("rb") as content:
                    stored = default_storage.save(name, File(content, name=name))
                if stored != name:  # stored meanwhile by someone else: keep theirs
                    default_storage.delete(stored)
                    differ.append(name)
                    continue
            if options["verbosity"] >= 2:
                self.stdout.write(f"{'Would copy' if dry_run else 'Copied'} {name}")
            copied += 1
            copied_bytes += size
        self.stdout.write(
            f"{'Would copy' if dry_run else 'Copied'} {copied} files "
            f"({copied_bytes} bytes) from {source}; {skipped} already stored; "
            f"{len(differ)} stored with another size."
        )
        if differ:
            raise CommandError(
                "Stored already under the same name with another size, left as "
                "they are (compare them by hand): " + ", ".join(differ)
            )
