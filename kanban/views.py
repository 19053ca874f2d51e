"""The board page: columns, drag and drop (and a keyboard "move to"), inline edits, live updates."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from accounts.models import User
from core.contributions import BOARD_CARD_BADGES, CARD_PANEL, collect
from core.roles import Action
from crm.models import Tag
from crm.services import contact_get_or_create
from inbox.selectors import conversations_visible_to
from kanban.forms import BoardForm, CardForm, StageForm
from kanban.models import ActorKind, Board, Card, Stage
from kanban.selectors import board_columns, boards_all, card_history
from kanban.services import (
    board_create,
    card_create,
    card_delete,
    card_move,
    card_update,
    stage_create,
    stage_delete,
    stage_reorder,
    stage_update,
)


def _members(request: HttpRequest) -> Any:
    return User.objects.filter(memberships__tenant=request.tenant).order_by("name", "email")  # type: ignore[attr-defined]


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@action_required(Action.PIPELINE_VIEW, post=Action.PIPELINE_MANAGE)
def board_list(request: HttpRequest) -> HttpResponse:
    form = BoardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        board = board_create(name=form.cleaned_data["name"])
        return redirect("board_detail", pk=board.pk)
    boards = list(boards_all())
    if len(boards) == 1 and request.method == "GET" and not request.GET.get("all"):
        return redirect("board_detail", pk=boards[0].pk)
    return render(request, "kanban/boards.html", {"boards": boards, "form": form})


@action_required(Action.PIPELINE_VIEW)
def board_detail(request: HttpRequest, pk: int) -> HttpResponse:
    board = get_object_or_404(Board, pk=pk)
    params = request.GET
    columns = board_columns(
        board=board, owner=params.get("owner", ""), tag=params.get("tag", ""), q=params.get("q", "")
    )
    cards = [card for column in columns for card in column["cards"]]
    badges: dict[int, list[str]] = {}
    for card_id, html in collect(BOARD_CARD_BADGES, board=board, cards=cards, request=request):
        badges.setdefault(card_id, []).append(html)
    for card in cards:
        card.badges = badges.get(card.pk, [])  # type: ignore[attr-defined]
    context = {
        "board": board,
        "columns": columns,
        "stages": [c["stage"] for c in columns],
        "params": params,
        "members": _members(request),
        "tags": Tag.objects.all(),
        "boards": boards_all(),
        "card_form": CardForm(members=_members(request)),
        "stage_form": StageForm(),
    }
    return render(request, "kanban/board.html", context)


@require_POST
@action_required(Action.CARD_EDIT)
def card_add(request: HttpRequest, pk: int, stage_id: int) -> HttpResponse:
    board = get_object_or_404(Board, pk=pk)
    stage = get_object_or_404(Stage, pk=stage_id, board=board)
    form = CardForm(request.POST, members=_members(request))
    if form.is_valid():
        data = dict(form.cleaned_data)
        phone = data.pop("contact_phone", "")
        try:
            contact = contact_get_or_create(phone=phone) if phone else None
            card_create(board=board, stage=stage, actor=request.user, contact=contact, **data)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    else:
        messages.error(request, _("The card was not created: %(errors)s") % {"errors": form.errors.as_text()})
    return redirect("board_detail", pk=pk)


@require_POST
@action_required(Action.CARD_EDIT)
def card_move_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Drag and drop (JSON answer) and the keyboard "move to" form (redirect) both end here."""
    card = get_object_or_404(Card, pk=pk)
    stage_id = _int(request.POST.get("stage"))
    if stage_id is None:
        return JsonResponse({"error": _("Choose a stage.")}, status=400)
    try:
        moved = card_move(
            card_id=card.pk,
            to_stage_id=stage_id,
            after_id=_int(request.POST.get("after")),
            before_id=_int(request.POST.get("before")),
            actor=request.user,
            actor_kind=ActorKind.PERSON,
            reason=request.POST.get("reason", ""),
        )
    except (ValidationError, Stage.DoesNotExist) as exc:
        message = " ".join(exc.messages) if isinstance(exc, ValidationError) else _("That stage does not exist.")
        if request.headers.get("Accept") == "application/json":
            return JsonResponse({"error": message}, status=409)
        messages.error(request, message)
        return redirect("board_detail", pk=card.board_id)
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"card": moved.pk, "stage": moved.stage_id, "rank": moved.rank})
    return redirect("board_detail", pk=card.board_id)


@action_required(Action.PIPELINE_VIEW, post=Action.CARD_EDIT)
def card_detail(request: HttpRequest, pk: int) -> HttpResponse:
    card = get_object_or_404(Card.objects.select_related("contact", "stage", "board"), pk=pk)
    form = CardForm(request.POST or None, instance=card, members=_members(request))
    if request.method == "POST":
        if request.POST.get("delete"):
            card_delete(card=card)
            messages.success(request, _("Card deleted."))
            return redirect("board_detail", pk=card.board_id)
        if form.is_valid():
            data = dict(form.cleaned_data)
            phone = data.pop("contact_phone", "")
            try:
                if phone:
                    data["contact"] = contact_get_or_create(phone=phone)
                card_update(card=Card.objects.get(pk=card.pk), **data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Card saved."))
                return redirect("card_detail", pk=pk)
    visible = conversations_visible_to(user=request.user, role=request.membership.role)  # type: ignore[attr-defined]
    conversations = visible.filter(contact=card.contact) if card.contact else []
    context = {
        "card": card,
        "form": form,
        "history": card_history(card=card),
        "panels": collect(CARD_PANEL, card=card, request=request),
        "conversations": conversations,
        "stages": Stage.objects.filter(board=card.board),
    }
    return render(request, "kanban/card.html", context, status=400 if form.errors else 200)


@require_POST
@action_required(Action.PIPELINE_MANAGE)
def stage_add(request: HttpRequest, pk: int) -> HttpResponse:
    board = get_object_or_404(Board, pk=pk)
    form = StageForm(request.POST)
    if form.is_valid():
        stage_create(board=board, **form.cleaned_data)
    else:
        messages.error(request, form.errors.as_text())
    return redirect("board_detail", pk=pk)


@require_POST
@action_required(Action.PIPELINE_MANAGE)
def stage_edit(request: HttpRequest, pk: int) -> HttpResponse:
    stage = get_object_or_404(Stage, pk=pk)
    action = request.POST.get("action", "save")
    try:
        if action == "delete":
            target_id = _int(request.POST.get("move_to"))
            target = Stage.objects.filter(pk=target_id, board=stage.board).first() if target_id else None
            stage_delete(stage=stage, move_cards_to=target)
        elif action == "reorder":
            stage_reorder(
                stage=stage, after_id=_int(request.POST.get("after")), before_id=_int(request.POST.get("before"))
            )
            if request.headers.get("Accept") == "application/json":
                return JsonResponse({"stage": stage.pk, "rank": stage.rank})
        else:
            form = StageForm(request.POST, instance=stage)
            if form.is_valid():
                stage_update(stage=stage, **form.cleaned_data)
            else:
                messages.error(request, form.errors.as_text())
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("board_detail", pk=stage.board_id)
