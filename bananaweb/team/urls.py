from django.urls import path

from bananaweb.team import views

urlpatterns = [
    path("collections/", views.collections, name="collections"),
    path("collections/add/", views.collection_add, name="collection-add"),
    path("collections/<int:pk>/", views.collection_detail, name="collection-detail"),
    path("collections/<int:pk>/edit/", views.collection_edit, name="collection-edit"),
    path(
        "collections/<int:pk>/delete/",
        views.collection_delete,
        name="collection-delete",
    ),
    path(
        "collections/<int:pk>/download/",
        views.collection_download,
        name="collection-download",
    ),
    path(
        "collections/<int:pk>/members/",
        views.collection_members,
        name="collection-members",
    ),
    path(
        "collections/<int:pk>/members/<int:member_pk>/",
        views.collection_member,
        name="collection-member",
    ),
    path(
        "collections/<int:pk>/items/<int:item_pk>/remove/",
        views.collection_item_remove,
        name="collection-item-remove",
    ),
    path(
        "collections/<int:pk>/items/<int:item_pk>/move/",
        views.collection_item_move,
        name="collection-item-move",
    ),
    path(
        "collections/<int:pk>/items/<int:item_pk>/cover/",
        views.collection_item_cover,
        name="collection-item-cover",
    ),
    path("settings/share-links/", views.share_links, name="share-links"),
    path(
        "settings/share-links/new/", views.share_link_create, name="share-link-create"
    ),
    path(
        "settings/share-links/<int:pk>/revoke/",
        views.share_link_revoke,
        name="share-link-revoke",
    ),
    # Public: the link's token is the only key (selectors.share_link_for_token).
    path("s/<str:token>/", views.share_page, name="share-page"),
    path("s/<str:token>/images/<int:n>/", views.share_image, name="share-image"),
    path(
        "s/<str:token>/images/<int:n>/thumbnail/",
        views.share_thumbnail,
        name="share-thumbnail",
    ),
]
