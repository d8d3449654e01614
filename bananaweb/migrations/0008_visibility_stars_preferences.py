"""Visibility and per-person stars (issue 12).

Every request gets a visibility (private, the default for what exists: nothing
is shown to anyone new), each person their preferences, and stars become each
person's own: a request starred until now becomes a Star of its owner, then
ImageRequest.starred goes.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def stars_from_starred(apps, schema_editor):
    ImageRequest = apps.get_model("bananaweb", "ImageRequest")
    Star = apps.get_model("bananaweb", "Star")
    starred = ImageRequest.objects.filter(starred=True).values_list("pk", "user_id")
    Star.objects.bulk_create(
        (Star(user_id=user_id, image_request_id=pk) for pk, user_id in starred.iterator()),
        batch_size=1000,
        ignore_conflicts=True,
    )


def starred_from_stars(apps, schema_editor):
    """Back: a request is starred if its owner starred it (others' stars are lost)."""
    ImageRequest = apps.get_model("bananaweb", "ImageRequest")
    Star = apps.get_model("bananaweb", "Star")
    owners = Star.objects.filter(
        image_request=models.OuterRef("pk"), user=models.OuterRef("user")
    )
    ImageRequest.objects.filter(models.Exists(owners)).update(starred=True)


class Migration(migrations.Migration):

    dependencies = [
        ('bananaweb', '0007_prompt_search_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='imagerequest',
            name='visibility',
            field=models.CharField(choices=[('private', 'Private'), ('team', 'Team')], default='private', max_length=7),
        ),
        migrations.AddConstraint(
            model_name='imagerequest',
            constraint=models.CheckConstraint(condition=models.Q(('visibility__in', ['private', 'team'])), name='image_request_visibility_valid'),
        ),
        migrations.CreateModel(
            name='UserPreference',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('default_visibility', models.CharField(blank=True, choices=[('private', 'Private'), ('team', 'Team')], help_text="Who can see their new images; empty follows the site's default.", max_length=7)),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='preference', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(('default_visibility__in', ['private', 'team']), ('default_visibility', ''), _connector='OR'), name='user_preference_default_visibility_valid')],
            },
        ),
        migrations.CreateModel(
            name='Star',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('image_request', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='stars', to='bananaweb.imagerequest')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='stars', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('user', 'image_request'), name='star_once_per_user')],
            },
        ),
        migrations.RunPython(stars_from_starred, starred_from_stars),
        migrations.RemoveField(
            model_name='imagerequest',
            name='starred',
        ),
    ]
