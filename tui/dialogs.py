"""Dialogs: each a ``ModalScreen[T]`` that ``dismiss``-es with its value (None: cancelled)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option
from trackops.core.service import RegisterRequest
from trackops.tui.format import clean, safe

if TYPE_CHECKING:
    from trackops.core.service import CarrierChoice, Service

__all__ = ["CarrierDialog", "ConfirmDialog", "RegisterDialog", "TextDialog"]


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; ``y``/``enter`` confirm, ``n``/``escape`` cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes") -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Static(Text(self.question), id="question")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="error", id="yes")
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TextDialog(ModalScreen[str | None]):
    """One line of text (a tag): ``enter`` saves, ``escape`` cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", *, placeholder: str = "") -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(Text(self.title_text))
            yield Input(self.value, placeholder=self.placeholder, id="text")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class CarrierPicker(Vertical):
    """A carrier search box with the matching carriers below it (by name or code)."""

    def __init__(self, service: Service, *, id: str, initial: str = "") -> None:
        super().__init__(id=id, classes="picker")
        self.service = service
        self.initial = initial
        self.choices: list[CarrierChoice] = []
        self.chosen: CarrierChoice | None = None

    def compose(self) -> ComposeResult:
        yield Input(self.initial, placeholder="carrier name or code (empty: detect)", id="carrier")
        yield OptionList(id="carrier-options")

    def on_mount(self) -> None:
        self._search(self.initial)

    @on(Input.Changed, "#carrier")
    def _changed(self, event: Input.Changed) -> None:
        if self.chosen is not None and event.value == self.chosen.name:
            return  # the box shows the carrier just taken
        self.chosen = None
        self._search(event.value)

    def _search(self, text: str) -> None:
        options = self.query_one("#carrier-options", OptionList)
        options.clear_options()
        self.choices = self.service.carriers(text, limit=8) if text.strip() else []
        for choice in self.choices:
            label = Text.assemble(
                (f"{choice.code:>6} ", "dim"),
                safe(choice.name),
                (f"  {choice.country or ''}", "dim"),
            )
            options.add_option(Option(label, id=str(choice.code)))
        options.display = bool(self.choices)

    @on(Input.Submitted, "#carrier")
    def _take_first(self, event: Input.Submitted) -> None:
        # enter in the box takes the best match (the list is best first); once a carrier is
        # taken, enter goes on to the dialog.
        if self.chosen is None and self.choices:
            event.stop()
            self.pick(self.choices[0])

    def key_down(self) -> None:
        options = self.query_one("#carrier-options", OptionList)
        if options.display and self.query_one("#carrier", Input).has_focus:
            options.focus()
            options.highlighted = 0

    @on(OptionList.OptionSelected, "#carrier-options")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.pick(self.choices[event.option_index])

    def pick(self, choice: CarrierChoice) -> None:
        """Take ``choice``: the box shows its name, the list closes."""
        self.chosen = choice
        box = self.query_one("#carrier", Input)
        with box.prevent(Input.Changed):
            box.value = choice.name
        self.query_one("#carrier-options", OptionList).display = False
        box.focus()
        self.post_message(Input.Changed(box, box.value))

    def carrier_code(self) -> int | None:
        """The chosen carrier's code; resolves typed text (InvalidInputError); None: detect."""
        if self.chosen is not None:
            return self.chosen.code
        text = self.query_one("#carrier", Input).value.strip()
        return self.service.resolve_carrier(text) if text else None


class RegisterDialog(ModalScreen[list[RegisterRequest] | None]):
    """Register numbers: pasted one per line, a carrier picker, the carrier's extra param with
    its hint (validated before anything is sent), tag, order number and buyer email."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Register"),
    ]

    def __init__(self, service: Service) -> None:
        super().__init__(classes="dialog")
        self.service = service

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="box wide"):
            yield Label("Tracking numbers, one per line")
            yield TextArea(id="numbers", soft_wrap=False)
            yield Label("Carrier")
            yield CarrierPicker(self.service, id="picker")
            yield Label("Extra parameter", id="param-label")
            yield Input(placeholder="postal code, phone ... when the carrier needs it", id="param")
            with Horizontal(classes="row"):
                yield Input(placeholder="tag", id="tag")
                yield Input(placeholder="order number", id="order")
                yield Input(placeholder="buyer email", id="email")
            yield Static("", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Register", variant="primary", id="register")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#numbers", TextArea).focus()

    @on(Input.Changed, "#carrier")
    def _carrier_changed(self) -> None:
        picker = self.query_one(CarrierPicker)
        hint = picker.chosen.needs_param if picker.chosen else None
        label = self.query_one("#param-label", Label)
        if hint is None:
            label.update("Extra parameter")
        else:
            need = "required" if hint.required else "optional"
            label.update(Text(f"Extra parameter ({need}): {clean(hint.hint)}"))

    def _fail(self, message: str) -> None:
        self.query_one("#error", Static).update(Text(clean(message), style="bold red"))

    def requests(self) -> list[RegisterRequest]:
        """The requests the form describes; InvalidInputError / ValueError name what is wrong."""
        from trackops.core.service import InvalidInputError

        numbers = [
            clean(line).replace(" ", "")
            for line in self.query_one("#numbers", TextArea).text.splitlines()
        ]
        numbers = list(dict.fromkeys(n for n in numbers if n))
        if not numbers:
            raise InvalidInputError("enter at least one tracking number, one per line")
        carrier = self.query_one(CarrierPicker).carrier_code()
        param = self.query_one("#param", Input).value.strip() or None
        if carrier is not None:
            param = self.service.validate_param(carrier, param)
        elif param is not None:
            raise InvalidInputError("an extra parameter needs a carrier: choose one")
        tag, order, email = (
            self.query_one(f"#{key}", Input).value.strip() or None
            for key in ("tag", "order", "email")
        )
        return [
            RegisterRequest(
                number=n, carrier=carrier, param=param, tag=tag, order=order, email=email
            )
            for n in numbers
        ]

    def action_submit(self) -> None:
        from trackops.core.service import TrackopsError

        try:
            requests = self.requests()
        except TrackopsError as exc:
            self._fail(str(exc))
            return
        self.dismiss(requests)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "register":
            self.action_submit()
        else:
            self.dismiss(None)


class CarrierDialog(ModalScreen[int | None]):
    """Choose another carrier for one shipment."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, service: Service, number: str, current: str = "") -> None:
        super().__init__(classes="dialog")
        self.service = service
        self.number = number
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(Text(f"New carrier for {clean(self.number)}"))
            yield CarrierPicker(self.service, id="picker", initial=self.current)
            yield Static("", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Change", variant="primary", id="change")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#carrier", Input).focus()

    @on(Input.Submitted, "#carrier")
    def _submitted(self) -> None:
        self._change()

    def _change(self) -> None:
        from trackops.core.service import TrackopsError

        try:
            code = self.query_one(CarrierPicker).carrier_code()
        except TrackopsError as exc:
            self.query_one("#error", Static).update(Text(clean(str(exc)), style="bold red"))
            return
        if code is None:
            self.query_one("#error", Static).update(Text("choose a carrier", style="bold red"))
            return
        self.dismiss(code)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "change":
            self._change()
        else:
            self.dismiss(None)
