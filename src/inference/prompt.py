"""Prompts: plain text completion and the chat templates, turned into token ids.

Text completion is BOS followed by the prompt's tokens; an empty prompt is BOS alone, so the model
starts from nothing (how llama2.c's stories models are usually run). A vocab that says it adds no
BOS (a GGUF or Hugging Face flag) gets the prompt's tokens alone.

Chat models were fine-tuned on one exact layout of the dialog, and they only behave when they see
that layout again, byte for byte. A template renders a dialog to `PromptPart`s: plain text, which
the tokenizer encodes, and special tokens, which are inserted by id (a user typing "</s>" must not
produce the end-of-sequence token, so specials never go through the text encoder).

  Llama 2 (Meta's `chat_completion`), for each finished (user, assistant) pair and the last user turn:
      <s>[INST] {user} [/INST] {answer} </s><s>[INST] {user} [/INST]
  a system prompt is folded into the first user message as "<<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user}".

  Llama 3 (Meta's `ChatFormat`):
      <|begin_of_text|> then per message
      <|start_header_id|>{role}<|end_header_id|>\\n\\n{content}<|eot_id|>
      and finally <|start_header_id|>assistant<|end_header_id|>\\n\\n for the model to fill in.
"""

from __future__ import annotations

import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Sequence

from ..common.errors import LlamaError
from ..common.memory import address_space_cap, format_bytes

ROLE_SYSTEM = "system"
ROLE_USER = "user"
ROLE_ASSISTANT = "assistant"

# The names used for BOS/EOS whatever the tokenizer spells them as ("<s>", "\n<s>\n" in llama2.c).
BOS = "<s>"
EOS = "</s>"

# Llama 2 chat markers, as Meta's llama/generation.py defines them.
B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"

# Llama 3 special tokens.
BEGIN_OF_TEXT = "<|begin_of_text|>"
START_HEADER_ID = "<|start_header_id|>"
END_HEADER_ID = "<|end_header_id|>"
EOT_ID = "<|eot_id|>"


class PromptTokenizer(Protocol):
    """What prompt building needs from a tokenizer (src/tokenizer's `Tokenizer` has it all)."""

    kind: str
    bos_id: int | None
    eos_id: int | None
    special_tokens: dict[str, int]

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]: ...


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class PromptPart:
    """A run of plain text, or one special token named by `text` when `special` is True."""

    text: str
    special: bool = False


def special_id(tokenizer: PromptTokenizer, name: str) -> int:
    """The id of a special token; BOS and EOS come from the tokenizer's own ids."""
    if name == BOS and tokenizer.bos_id is not None:
        return tokenizer.bos_id
    if name == EOS and tokenizer.eos_id is not None:
        return tokenizer.eos_id
    try:
        return tokenizer.special_tokens[name]
    except KeyError:
        raise LlamaError(f"the tokenizer has no special token {name!r}: this prompt template needs another tokenizer") from None


def encode_parts(tokenizer: PromptTokenizer, parts: Sequence[PromptPart]) -> list[int]:
    """Each text part is encoded on its own (as Meta does), each special part becomes its id."""
    ids: list[int] = []
    for part in parts:
        if part.special:
            ids.append(special_id(tokenizer, part.text))
        elif part.text:
            ids.extend(tokenizer.encode(part.text, bos=False, eos=False))
    return ids


def render_parts(parts: Sequence[PromptPart]) -> str:
    """The prompt as one string, specials written by name: what the model "sees", for display and tests."""
    return "".join(part.text for part in parts)


# ---- text completion -----------------------------------------------------------------------------
def text_prompt_parts(prompt: str, tokenizer_kind: str = "sentencepiece") -> list[PromptPart]:
    bos = BEGIN_OF_TEXT if tokenizer_kind == "tiktoken" else BOS
    parts = [PromptPart(bos, special=True)]
    if prompt:
        parts.append(PromptPart(prompt))
    return parts


def encode_text_prompt(tokenizer: PromptTokenizer, prompt: str) -> list[int]:
    """BOS + the prompt's tokens; "" gives [BOS].

    A vocab that says not to add BOS (`add_bos` False: SmolLM2's BOS is the chat marker
    <|im_start|>) gets the prompt's tokens alone, so an empty prompt is an error there.
    """
    if not getattr(tokenizer, "add_bos", True):
        ids = tokenizer.encode(prompt, bos=False, eos=False) if prompt else []
        if not ids:
            raise LlamaError("this model's vocab puts no BOS token before a prompt, so an empty text prompt has no tokens: give some text")
        return ids
    if tokenizer.bos_id is None:
        raise LlamaError("the tokenizer has no BOS token, so no prompt can be started")
    return [tokenizer.bos_id] + (tokenizer.encode(prompt, bos=False, eos=False) if prompt else [])


# ---- chat templates ------------------------------------------------------------------------------
def check_dialog(dialog: Sequence[ChatMessage]) -> None:
    """A dialog is an optional system message, then user/assistant turns ending with a user turn."""
    if not dialog:
        raise LlamaError("a chat needs at least one user message")
    turns = dialog[1:] if dialog[0].role == ROLE_SYSTEM else dialog
    if not turns:
        raise LlamaError("a chat needs a user message after the system prompt")
    for index, message in enumerate(turns):
        expected = ROLE_USER if index % 2 == 0 else ROLE_ASSISTANT
        if message.role != expected:
            raise LlamaError(
                f"chat message {index + 1} has role {message.role!r}, expected {expected!r}: "
                "after an optional system prompt, roles must alternate user, assistant, user, ..."
            )
    if turns[-1].role != ROLE_USER:
        raise LlamaError("the last chat message must come from the user")


class ChatTemplate(ABC):
    """Renders a dialog to the exact prompt layout a chat model was fine-tuned on."""

    name: str

    @abstractmethod
    def Render(self, dialog: Sequence[ChatMessage]) -> list[PromptPart]:
        """The prompt parts for `dialog` (checked with `check_dialog`)."""

    def Encode(self, tokenizer: PromptTokenizer, dialog: Sequence[ChatMessage]) -> list[int]:
        return encode_parts(tokenizer, self.Render(dialog))

    def StopTokens(self) -> tuple[str, ...]:
        """The special tokens that end the model's turn in this layout (besides EOS)."""
        return ()

    def StopIds(self, tokenizer: PromptTokenizer) -> frozenset[int]:
        """`StopTokens` as ids of `tokenizer`; names it does not have are left out."""
        ids: set[int] = set()
        for name in self.StopTokens():
            try:
                ids.add(special_id(tokenizer, name))
            except LlamaError:
                continue
        return frozenset(ids)


class Llama2ChatTemplate(ChatTemplate):
    name = "llama2"

    def StopTokens(self) -> tuple[str, ...]:
        return (EOS,)  # each answer ends with </s>

    def Render(self, dialog: Sequence[ChatMessage]) -> list[PromptPart]:
        check_dialog(dialog)
        messages = list(dialog)
        if messages[0].role == ROLE_SYSTEM:
            # Llama 2 has no system role: the system text rides in front of the first user message.
            first = messages[1]
            messages = [ChatMessage(first.role, B_SYS + messages[0].content + E_SYS + first.content)] + messages[2:]
        parts: list[PromptPart] = []
        for user, answer in zip(messages[0:-1:2], messages[1::2]):
            parts += [
                PromptPart(BOS, special=True),
                PromptPart(f"{B_INST} {user.content.strip()} {E_INST} {answer.content.strip()} "),
                PromptPart(EOS, special=True),
            ]
        parts += [PromptPart(BOS, special=True), PromptPart(f"{B_INST} {messages[-1].content.strip()} {E_INST}")]
        return parts


class Llama3ChatTemplate(ChatTemplate):
    name = "llama3"

    def StopTokens(self) -> tuple[str, ...]:
        return (EOT_ID,)

    @staticmethod
    def header(role: str) -> list[PromptPart]:
        return [PromptPart(START_HEADER_ID, special=True), PromptPart(role), PromptPart(END_HEADER_ID, special=True), PromptPart("\n\n")]

    def Render(self, dialog: Sequence[ChatMessage]) -> list[PromptPart]:
        check_dialog(dialog)
        parts = [PromptPart(BEGIN_OF_TEXT, special=True)]
        for message in dialog:
            parts += self.header(message.role)
            parts += [PromptPart(message.content.strip()), PromptPart(EOT_ID, special=True)]
        return parts + self.header(ROLE_ASSISTANT)


# ---- the model's own template: Jinja, as Hugging Face renders it ---------------------------------
# Private-use characters put around special-token text found INSIDE a message, so that after
# rendering it can be told apart from the special tokens the template writes itself.
MARK_START = "\U000f0000"
MARK_END = "\U000f0001"
# What one rendering may produce: far more than any real prompt, small enough to hold in memory.
MAX_RENDERED_CHARS = 16 * 1024 * 1024
# What one rendering may do: loop iterations and calls, counted together ("steps"). Real templates
# take a few per message (SmolLM2's: 5 for a four-message dialog; HF's Llama 2 template: 7), so a
# budget of 100,000 plus 1,000 per message serves any real dialog, and stops a template that loops
# without writing anything (`for i in range(10**5)` twice nested: 10^10 iterations, hours) within
# a fraction of a second, or a macro that calls itself twice per level within a second or two.
MAX_RENDER_STEPS = 100_000
RENDER_STEPS_PER_MESSAGE = 1_000
# ... and the wall-clock time it may take, checked at every step: a step can be slow when a filter
# works on large data (`messages | tojson` inside a loop over a long dialog), which counting alone
# would not bound. A real render takes well under a millisecond.
MAX_RENDER_SECONDS = 10.0
# jinja2's wordwrap (textwrap) is quadratic in the length of a word: 64K characters without a space
# take about a second, a million take minutes, in one call no step count can interrupt. It is the one
# built-in filter that is not about linear in its input, and this caps its input.
MAX_WORDWRAP_CHARS = 1 << 16
# The longest template source accepted: published ones are at most a few tens of KB (the same
# limit as a Hugging Face directory's chat_template.jinja), and parsing is linear in the source.
MAX_TEMPLATE_CHARS = 1 << 20
MAX_RENDER_MEMORY = 512 << 20
# Text no real dialog contains: the probe that finds the end-of-turn token (see StopTokens).
_PROBE_ANSWER = "llamanuts end-of-turn probe"


class _RaisedByTemplate(Exception):
    """A template's own `raise_exception(message)`: the template refuses the dialog."""


class _StepBudgetExceeded(Exception):
    """The render ran out of steps or of time (see _jinja_environment)."""


def _render_clock() -> float:
    """The clock the render deadline is measured on (a function, so tests can move it)."""
    return time.monotonic()


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # Hugging Face's: plain json.dumps, without Jinja's HTML escaping.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise _RaisedByTemplate(message)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


def _repeats_too_much(left: Any, right: Any) -> bool:
    """`sequence * count` (either order) whose result would exceed MAX_RENDERED_CHARS items."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) and not isinstance(count, bool):
            return len(sequence) * count > MAX_RENDERED_CHARS
    return False


def _joins_too_much(*parts: Any) -> bool:
    """`a + b` or `a ~ b ~ ...` whose result would exceed MAX_RENDERED_CHARS items (strings, lists)."""
    return sum(len(p) for p in parts if isinstance(p, (str, list, tuple))) > MAX_RENDERED_CHARS


def _power_too_large(base: Any, exponent: Any) -> bool:
    """An integer power whose result would have more than 10**5 bits."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        return abs(base).bit_length() * exponent > 100_000
    return False


def _bounded_wordwrap(wordwrap: Any) -> Any:
    import jinja2

    @jinja2.pass_environment
    def bounded(environment: Any, text: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(text, str) and len(text) > MAX_WORDWRAP_CHARS:
            raise jinja2.exceptions.SecurityError(
                f"a chat template may wordwrap at most {MAX_WORDWRAP_CHARS} characters, not {len(text)}"
            )
        return wordwrap(environment, text, *args, **kwargs)

    return bounded


def _jinja_environment() -> Any:
    """jinja2's ImmutableSandboxedEnvironment, set up as transformers' apply_chat_template sets it up.

    The sandbox refuses attribute access to internals (`''.__class__`), calls of unsafe methods
    and any change to the lists and dicts it is given. Added, as Hugging Face does: trim_blocks and
    lstrip_blocks, break/continue (loopcontrols), a `tojson` that does not HTML-escape,
    `raise_exception`, `strftime_now`, a `namespace` that refuses underscore names, and the
    `{% generation %}` tag (for training masks; here it just renders its body).
    """
    import jinja2
    import jinja2.compiler
    import jinja2.ext
    import jinja2.nodes
    import jinja2.runtime
    import jinja2.sandbox

    class GenerationTag(jinja2.ext.Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

        def _render_body(self, caller: Any) -> str:
            return str(caller())

    def check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"a chat template may not set {name!r} on a namespace")

    class Namespace(jinja2.utils.Namespace):
        def __init__(*args: Any, **kwargs: Any) -> None:  # Jinja's own signature trick
            for name in dict(*args[1:], **kwargs):
                check_name(name)
            jinja2.utils.Namespace.__init__(*args, **kwargs)

        def __setitem__(self, name: str, value: Any) -> None:
            check_name(name)
            super().__setitem__(name, value)

    class CountingCodeGenerator(jinja2.compiler.CodeGenerator):
        """Compiles every `{% for x in items %}` as `{% for x in counted(items) %}`, so that each
        iteration spends one step of the render's budget (a loop that writes nothing meets no other
        hook of the sandbox: an empty body compiles to `pass`). And evaluates nothing while
        compiling: jinja2 computes `{{ 'x' | center(10**9) }}` at compile time when it can (constant
        folding), outside any budget; here only plain template text is folded."""

        def visit_Template(self, node: Any, frame: Any = None) -> None:
            for loop in node.find_all(jinja2.nodes.For):
                counted = jinja2.nodes.EnvironmentAttribute("counted", lineno=loop.iter.lineno)
                loop.iter = jinja2.nodes.Call(counted, [loop.iter], [], None, None, lineno=loop.iter.lineno)
            super().visit_Template(node, frame)

        def visit_Concat(self, node: Any, frame: Any) -> None:
            # `a ~ b`: jinja2's str_join, through the environment, which checks the length first
            self.write("environment.checked_concat((")
            for item in node.nodes:
                self.visit(item, frame)
                self.write(", ")
            self.write("))")

        def _output_child_to_const(self, node: Any, frame: Any, finalize: Any) -> str:
            if not isinstance(node, jinja2.nodes.TemplateData):
                raise jinja2.nodes.Impossible()
            return super()._output_child_to_const(node, frame, finalize)

    class Environment(jinja2.sandbox.ImmutableSandboxedEnvironment):
        # Beyond Hugging Face's set-up: jinja2's sandbox bounds range() but not `'x' * 10**10`,
        # `9 ** 9 ** 9` or a string that doubles with `+` / `~`, which would eat the memory or the
        # time before any output is checked (no value may be longer than a whole rendering may be);
        # nor the time of loops and calls: each loop iteration and each call spends a step.
        intercepted_binops = frozenset({"*", "**", "+"})
        code_generator_class = CountingCodeGenerator
        steps_left = MAX_RENDER_STEPS  # set for each render by JinjaChatTemplate.RenderText
        deadline = math.inf

        def spend_step(self) -> None:
            self.steps_left -= 1
            if self.steps_left < 0 or _render_clock() > self.deadline:
                raise _StepBudgetExceeded()

        def counted(self, iterable: Any) -> Iterator[Any]:
            for item in iterable:
                self.spend_step()
                yield item

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - jinja2's names
            __self.spend_step()
            if isinstance(__obj, jinja2.runtime.LoopContext) and args:
                # `loop(children)` in a recursive loop iterates `children` with no For node of its own
                args = (__self.counted(args[0]), *args[1:])
            return super().call(__context, __obj, *args, **kwargs)

        def checked_concat(self, items: tuple[Any, ...]) -> str:
            parts = [str(item) for item in items]
            if _joins_too_much(*parts):
                raise jinja2.exceptions.SecurityError(f"a chat template may not build a string over {MAX_RENDERED_CHARS} characters")
            return "".join(parts)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "+" and _joins_too_much(left, right):
                raise jinja2.exceptions.SecurityError(f"a chat template may not build a sequence over {MAX_RENDERED_CHARS} items")
            if operator == "*" and _repeats_too_much(left, right):
                raise jinja2.exceptions.SecurityError(f"a chat template may not build a sequence over {MAX_RENDERED_CHARS} items")
            if operator == "**" and _power_too_large(left, right):
                raise jinja2.exceptions.SecurityError("a chat template may not compute so large a power")
            return super().call_binop(context, operator, left, right)

    # optimized=False: jinja2's optimizer would fold constant expressions at compile time (see
    # CountingCodeGenerator); everything a template computes is computed while rendering, counted.
    env = Environment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols], optimized=False
    )
    env.filters["tojson"] = _tojson
    env.filters["wordwrap"] = _bounded_wordwrap(env.filters["wordwrap"])
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["namespace"] = Namespace
    env.globals["dict"] = lambda *args, **kwargs: dict(*args, **kwargs)
    return env


class JinjaChatTemplate(ChatTemplate):
    """A model's own chat template (Jinja source), rendered in jinja2's sandbox.

    The template sees what Hugging Face's `apply_chat_template` gives it: `messages` (dicts with
    "role" and "content"), `add_generation_prompt=True`, `bos_token`, `eos_token` (and any
    `extra_context`, e.g. `unk_token`), `tools=None`, `documents=None`, plus the functions above.

    Splitting the result. The rendered text holds the template's own special tokens ("<|im_start|>")
    as text, and they must become special ids; but a user who types "<|im_end|>" must get ordinary
    tokens. So before rendering, every special-token string INSIDE a message is wrapped in two
    private-use markers (MARK_START, MARK_END; markers a user typed are removed first). After
    rendering, special-token strings outside markers become special parts; everything between
    them, the marked strings included (without their markers), is one text part, encoded as plain
    text exactly as if the user's text had held no such string. Only the special tokens are
    marked, not the whole content, so templates that transform content (`| trim`, `.strip()`,
    `| upper`) render exactly as they would without the markers. The limit: a template that cuts
    content apart (`.split()`, slicing) can separate a marker from its token; a lone marker is
    then dropped. (transformers' `sanitize_control_tokens=True` marks the same way but encodes
    each marked token on its own; joining it to its text instead keeps SentencePiece-style
    vocabularies from adding a dummy-prefix space at every such token.)
    """

    name = "jinja"

    def __init__(
        self,
        source: str,
        bos_token: str = "",
        eos_token: str = "",
        special_tokens: Collection[str] = (),
        extra_context: Mapping[str, Any] | None = None,
        origin: str = "the model's chat template",
    ) -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.extra_context = dict(extra_context or {})
        self.origin = origin
        names = {t for t in (*special_tokens, bos_token, eos_token) if t}
        self.special_token_names = frozenset(names)
        # Longest first, so a token is found whole before any token it contains.
        alternatives = "|".join(re.escape(t) for t in sorted(names, key=len, reverse=True)) or "(?!)"
        self._special_re = re.compile(alternatives)
        self._split_re = re.compile(f"{MARK_START}({alternatives}){MARK_END}|[{MARK_START}{MARK_END}]|({alternatives})")
        self._compiled: Any = None
        self._stop_tokens: tuple[str, ...] | None = None

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, source: str | None = None) -> JinjaChatTemplate:
        """The template `tokenizer` carries (or `source`), with its BOS/EOS text and special tokens."""
        template = source if source is not None else getattr(tokenizer, "chat_template", None)
        if not template:
            raise LlamaError(f"the tokenizer {getattr(tokenizer, 'path', '')} has no chat template")
        names = {id: name for name, id in tokenizer.special_tokens.items()}

        def text_of(id: int | None) -> str:
            if id is None:
                return ""
            return names.get(id) or tokenizer.id_to_piece(id)

        extra = {"unk_token": text_of(tokenizer.unk_id)} if getattr(tokenizer, "unk_id", None) is not None else {}
        # Hugging Face's tokenizer knows which file beside tokenizer.json held it (.jinja or config)
        path = str(getattr(tokenizer, "chat_template_path", None) or getattr(tokenizer, "path", ""))
        origin = f"the chat template of {path}" if path else "the model's chat template"
        return cls(template, text_of(tokenizer.bos_id), text_of(tokenizer.eos_id), tokenizer.special_tokens, extra, origin)

    # ---- rendering ------------------------------------------------------------------------------
    def _template(self) -> Any:
        if self._compiled is None:
            import jinja2

            if len(self.source) > MAX_TEMPLATE_CHARS:
                raise LlamaError(
                    f"{self.origin} is {len(self.source):,} characters long, more than the {MAX_TEMPLATE_CHARS:,} a chat "
                    f"template may have (published ones are a few KB)"
                )
            try:
                with address_space_cap(MAX_RENDER_MEMORY):
                    self._compiled = _jinja_environment().from_string(self.source)
            except jinja2.TemplateSyntaxError as exc:
                raise LlamaError(f"{self.origin} has a syntax error at line {exc.lineno}: {exc.message}") from None
            except (RecursionError, MemoryError, SyntaxError) as exc:
                # nesting deeper than jinja2's parser or Python's compiler can follow
                raise LlamaError(f"{self.origin} cannot be compiled: {type(exc).__name__}: {str(exc)[:200]}") from None
        return self._compiled

    def _mark(self, text: str) -> str:
        text = text.replace(MARK_START, "").replace(MARK_END, "")
        return self._special_re.sub(lambda m: MARK_START + m.group() + MARK_END, text)

    def RenderText(self, dialog: Sequence[ChatMessage], add_generation_prompt: bool = True) -> str:
        """The rendered prompt with markers, as one string (see the class docstring)."""
        import jinja2

        template = self._template()
        context = {
            **self.extra_context,
            "messages": [{"role": m.role, "content": self._mark(m.content)} for m in dialog],
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "tools": None,
            "documents": None,
        }
        chunks: list[str] = []
        size = 0
        steps = MAX_RENDER_STEPS + RENDER_STEPS_PER_MESSAGE * len(dialog)
        template.environment.steps_left = steps
        template.environment.deadline = _render_clock() + MAX_RENDER_SECONDS
        try:
            with address_space_cap(MAX_RENDER_MEMORY):
                for chunk in template.generate(**context):
                    size += len(chunk)
                    if size > MAX_RENDERED_CHARS:
                        raise LlamaError(f"{self.origin} produced more than {MAX_RENDERED_CHARS} characters; refusing it")
                    chunks.append(chunk)
        except LlamaError:
            raise
        except _StepBudgetExceeded:
            raise LlamaError(
                f"{self.origin} did not finish within {steps:,} loop iterations and calls or {MAX_RENDER_SECONDS:g} "
                f"seconds for this {len(dialog)}-message dialog (a real template needs a few per message); refusing it"
            ) from None
        except MemoryError:
            raise LlamaError(
                f"{self.origin} needed more than {format_bytes(MAX_RENDER_MEMORY)} of memory to render this dialog; "
                f"refusing it"
            ) from None
        except _RaisedByTemplate as exc:
            raise LlamaError(f"{self.origin} refused the dialog: {exc}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise LlamaError(f"{self.origin} tried something the sandbox forbids: {exc}") from None
        except jinja2.TemplateError as exc:
            raise LlamaError(f"{self.origin} failed: {exc}") from None
        except Exception as exc:  # a template is a program from a model file: any failure is its own
            raise LlamaError(f"{self.origin} failed: {type(exc).__name__}: {exc}") from None
        return "".join(chunks)

    def Render(self, dialog: Sequence[ChatMessage]) -> list[PromptPart]:
        check_dialog(dialog)
        return list(self._split(self.RenderText(dialog)))

    def _split(self, rendered: str) -> Iterator[PromptPart]:
        """Template specials -> special parts; everything between, including special-token text
        a user typed (marked), -> one text part, encoded as plain text."""
        text: list[str] = []
        position = 0
        for match in self._split_re.finditer(rendered):
            text.append(rendered[position : match.start()])
            typed, special = match.group(1), match.group(2)
            if special is not None:
                if "".join(text):
                    yield PromptPart("".join(text))
                text = []
                yield PromptPart(special, special=True)
            elif typed is not None:
                text.append(typed)  # typed by a user: stays text, joined with the text around it
            position = match.end()  # a lone marker (the template cut a marked token apart): dropped
        text.append(rendered[position:])
        if "".join(text):
            yield PromptPart("".join(text))

    # ---- where the model's turn ends ----------------------------------------------------------
    def StopTokens(self) -> tuple[str, ...]:
        """The special token the template writes right after an assistant message (the end of
        the model's turn, "<|im_end|>" for ChatML), found by rendering a probe dialog once: the
        part after the answer must be special, with at most whitespace between. Empty if there is
        none, or if the template fails on the probe (then EOS alone ends generation)."""
        if self._stop_tokens is None:
            probe = [ChatMessage(ROLE_USER, "hi"), ChatMessage(ROLE_ASSISTANT, _PROBE_ANSWER), ChatMessage(ROLE_USER, "bye")]
            try:
                parts = self.Render(probe)
            except LlamaError:
                parts = []
            self._stop_tokens = ()
            for part, following in zip(parts, parts[1:]):
                if not part.special and _PROBE_ANSWER in part.text:
                    if following.special and not part.text.split(_PROBE_ANSWER, 1)[1].strip():
                        self._stop_tokens = (following.text,)
                    break
        return self._stop_tokens


def default_chat_template(tokenizer: Any) -> ChatTemplate:
    """The model's own template when its files carry one; else Llama 3's layout for Llama 3
    vocabularies (tiktoken, or one with its header tokens) and Llama 2's for the rest."""
    if getattr(tokenizer, "chat_template", None):
        return JinjaChatTemplate.from_tokenizer(tokenizer)
    llama3_tokens = (START_HEADER_ID, END_HEADER_ID, EOT_ID)
    if tokenizer.kind == "tiktoken" or all(t in tokenizer.special_tokens for t in llama3_tokens):
        return Llama3ChatTemplate()
    return Llama2ChatTemplate()


def chat_template_for(tokenizer_kind: str) -> ChatTemplate:
    """Llama 3's header template for tiktoken tokenizers, Llama 2's [INST] template otherwise."""
    return Llama3ChatTemplate() if tokenizer_kind == "tiktoken" else Llama2ChatTemplate()


def build_dialog(user: str, system: str | None = None, history: Sequence[tuple[str, str]] = ()) -> list[ChatMessage]:
    """A dialog from an optional system prompt, earlier (user, answer) pairs and the new user text."""
    dialog: list[ChatMessage] = []
    if system:
        dialog.append(ChatMessage(ROLE_SYSTEM, system))
    for question, answer in history:
        dialog += [ChatMessage(ROLE_USER, question), ChatMessage(ROLE_ASSISTANT, answer)]
    dialog.append(ChatMessage(ROLE_USER, user))
    return dialog


__all__ = [
    "BOS",
    "EOS",
    "ChatMessage",
    "ChatTemplate",
    "Llama2ChatTemplate",
    "JinjaChatTemplate",
    "Llama3ChatTemplate",
    "MARK_END",
    "MARK_START",
    "PromptPart",
    "PromptTokenizer",
    "build_dialog",
    "chat_template_for",
    "check_dialog",
    "default_chat_template",
    "encode_parts",
    "encode_text_prompt",
    "render_parts",
    "special_id",
    "text_prompt_parts",
]
