from django.urls import path

from kanban import views

urlpatterns = [
    path("boards/", views.board_list, name="board_list"),
    path("boards/<int:pk>/", views.board_detail, name="board_detail"),
    path("boards/<int:pk>/stages/", views.stage_add, name="stage_add"),
    path("boards/<int:pk>/stages/<int:stage_id>/cards/", views.card_add, name="card_add"),
    path("stages/<int:pk>/", views.stage_edit, name="stage_edit"),
    path("cards/<int:pk>/", views.card_detail, name="card_detail"),
    path("cards/<int:pk>/move/", views.card_move_view, name="card_move"),
]
