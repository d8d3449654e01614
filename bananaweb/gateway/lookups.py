"""The gateway's token check and task result from SQL built once per process
(bananaweb.compiled, bananaweb.lookups): scripts poll them. None where there is
no compiled SQL (SQLite), then the caller asks the ORM; False when not found.
"""

import uuid

from django.contrib.auth import get_user_model

from bananaweb import compiled
from bananaweb.gateway.models import ApiToken, GatewayTask
from bananaweb.lookups import fields, first_instances, with_images
from bananaweb.models import GeneratedImage, ImageRequest


def active_token(token_hash: str) -> ApiToken | None | bool:
    """The active token with this hash, of an active user, with its user."""
    User = get_user_model()
    asked = compiled.query(
        ("active-token",),
        lambda hashed: (
            ApiToken.objects.active()
            .filter(token_hash=hashed, user__is_active=True)
            .order_by()
            .values_list(*fields(ApiToken), *fields(User, "user__"))
        ),
        model=ApiToken,
        prepare=True,
        token_hash=token_hash,
    )
    found = first_instances(asked, ApiToken, User)
    if not found:
        return found
    api_token, user = found
    api_token.user = user
    return api_token


def own_task(user, task_id: uuid.UUID) -> GatewayTask | None | bool:
    """The user's task `task_id`, of a live request, with its request and images,
    in one round trip."""
    task = compiled.query(
        ("own-task",),
        lambda viewer, id_: (
            GatewayTask.objects.filter(
                image_request__user=viewer,
                image_request__deleted_at__isnull=True,
                task_id=id_,
            )
            .order_by()
            .values_list(*fields(GatewayTask), *fields(ImageRequest, "image_request__"))
        ),
        model=GatewayTask,
        prepare=True,
        user=user,
        task_id=task_id,
    )
    images = compiled.query(
        ("own-task-images",),
        lambda viewer, id_: GeneratedImage.objects.filter(
            image_request__user=viewer, image_request__gateway_task__task_id=id_
        ).values_list(*fields(GeneratedImage)),
        model=GeneratedImage,
        prepare=True,
        user=user,
        task_id=task_id,
    )
    with compiled.together(task, images):
        found = first_instances(task, GatewayTask, ImageRequest)
        if not found:
            return found
        gateway_task, image_request = found
        gateway_task.image_request = with_images(image_request, user, images)
    return gateway_task
