"""The normalization request and the parser of its answer (METHOD.md section 3).

One user message carries the raw file verbatim and asks for four parts under
the headings ``## Main Function``, ``## Input Output Description``,
``## Input Generator`` and ``## Problem Statement`` with python fences: the
format of the authors' reference scripts, so their published responses parse
too. Real models drift from it (extra prose, renamed or missing headings,
several code blocks, ```py fences, CRLF, ``main_solution`` written as a
method), so the parser is tolerant where the intent is clear and otherwise
returns a :class:`ParseFailure` with a short machine reason that the stage
counts. A JSON-mode variant (``response_format`` json_object) is parsed by the
same validation.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from codeio.prompting import TemplateError  # one error type for every template problem (the CLI reports it)

NORMALIZE_TEMPLATE_VERSION = "v1"
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
TEMPLATE_NAME = "normalize"
JSON_TEMPLATE_NAME = "normalize_json"
CODE_PLACEHOLDER = "raw_code"  # $raw_code in the template

MAIN_NAME = "main_solution"
GENERATOR_NAME = "input_generator"

# A fence line: ``` or ~~~ (3 or more), then an optional language tag.
FENCE_LINE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n`]*$")
PYTHON_LANGS = frozenset({"", "python", "python3", "py", "py3", "pycon", "ipython"})
# Heading shapes outside code: "## Title", "**Title**", "1. Title:", "Title:" on its own line.
MARKDOWN_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]*(?P<title>.+?)[ \t#]*$")
BOLD_HEADING = re.compile(r"^[ \t]*(?:\d+[.)][ \t]*)?(?:\*\*|__)(?P<title>[^*_\n]{2,80}?)(?:\*\*|__)[ \t]*:?[ \t]*$")
NUMBERED_HEADING = re.compile(r"^[ \t]*(?:\d+[.)]|[IVX]+\.)[ \t]*(?P<title>[^\n]{2,60}?)[ \t]*:?[ \t]*$")
PLAIN_HEADING = re.compile(r"^[ \t]*(?P<title>[A-Za-z/&_ -]{2,50}?)[ \t]*:?[ \t]*$")
MAX_HEADING_WORDS = 7
HEADING_SHAPES = ((MARKDOWN_HEADING, False), (BOLD_HEADING, False), (NUMBERED_HEADING, True), (PLAIN_HEADING, True))
# Section names by heading title (lower case, markup stripped); checked in this order.
SECTION_PATTERNS = (
    ("generator", re.compile(r"\b(input[\s_-]*generat\w*|generators?)\b")),
    ("io", re.compile(r"\b(i\s*/\s*o|io|inputs?\s*(/|and|&|-|,)?\s*outputs?)\b")),
    ("main", re.compile(r"\b(main[\s_-]*(function|solution|code)|solution|code|refcode|implementation)\b")),
    ("problem", re.compile(r"\b(problem|question|task|statement)\b")),
)
# Numbered and plain "Title:" lines are also common in prose: they count only with an exact title.
STRICT_TITLES = (
    ("generator", re.compile(r"(the )?input[\s_-]*generator( function| code)?|generator")),
    ("io", re.compile(r"(the )?(inputs?\s*(/|and|&|-|,)?\s*outputs?|i\s*/\s*o|io)( descriptions?| requirements?| specifications?| format)?")),
    ("main", re.compile(r"(the )?(main[\s_-]*(function|solution|code)|main_solution( function)?|solution code|solution|code)")),
    ("problem", re.compile(r"(the )?(problem( statement| description)?|question)")),
)
# A closing paragraph addressed to the user, after the last section ("I hope this helps!").
CLOSING_CHATTER = re.compile(
    r"^\s*(i hope|hope this|let me know|feel free|if you (have|need)|this (solution|code|implementation|should)|"
    r"happy coding|good luck)", re.I)
HORIZONTAL_RULE = re.compile(r"^[ \t]*([-*_=])[ \t]*(\1[ \t]*){2,}$")


@dataclass(frozen=True)
class NormalizedParts:
    main_code: str
    io_description: str
    generator_code: str
    problem_statement: str
    notes: tuple[str, ...] = ()  # repairs the parser made: "hoisted main_solution from class Solution", ...


@dataclass(frozen=True)
class ParseFailure:
    reason: str  # short machine string: missing_main_solution, syntax_error, ...
    detail: str = ""


# -- the request -----------------------------------------------------------------
def load_normalize_template(prompt_dir: str | Path | None = None, json_mode: bool = False) -> str:
    """The template text: ``prompt_dir/normalize.v1.txt`` when that file exists
    (a user override), else the shipped one."""
    name = f"{JSON_TEMPLATE_NAME if json_mode else TEMPLATE_NAME}.{NORMALIZE_TEMPLATE_VERSION}.txt"
    if prompt_dir is not None and (Path(prompt_dir) / name).is_file():
        return (Path(prompt_dir) / name).read_text(encoding="utf-8")
    return (PROMPTS_DIR / name).read_text(encoding="utf-8")


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]


def build_normalize_messages(raw_code: str, template: str | None = None, json_mode: bool = False) -> list[dict[str, str]]:
    """One user message: the instructions with the raw file inserted verbatim."""
    text = template if template is not None else load_normalize_template(json_mode=json_mode)
    if f"${CODE_PLACEHOLDER}" not in text and f"${{{CODE_PLACEHOLDER}}}" not in text:
        raise TemplateError(f"the normalization template lacks the ${CODE_PLACEHOLDER} placeholder")
    content = Template(text).substitute({CODE_PLACEHOLDER: raw_code})
    return [{"role": "user", "content": content}]


# -- the answer --------------------------------------------------------------------
@dataclass(frozen=True)
class _Block:
    lang: str
    code: str
    start: int  # line index of the opening fence
    end: int  # line index of the closing fence (or the last line)

    @property
    def is_python(self) -> bool:
        return self.lang.lower() in PYTHON_LANGS


def _blocks(lines: list[str]) -> list[_Block]:
    """Fenced code blocks; an unclosed last block runs to the end of the text."""
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        match = FENCE_LINE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, lang = match.group("fence"), match.group("lang")
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            line = lines[j]
            if line.strip().startswith(fence[0] * 3) and line.strip().rstrip(fence[0]) == "":
                break
            if line.rstrip().endswith(fence) and not line.strip().startswith(fence):
                body.append(line.rstrip()[: -len(fence)])  # "    return x```": a fence glued to the last line
                break
            body.append(line)
            j += 1
        blocks.append(_Block(lang=lang, code="\n".join(body).strip("\n"), start=i, end=min(j, len(lines) - 1)))
        i = j + 1
    return blocks


def _section_of(title: str, strict: bool = False) -> str | None:
    clean = re.sub(r"[*`#:]+", " ", title).strip().lower()
    clean = re.sub(r"^(part|step|section)?\s*\d+[.):]?\s*", "", clean).strip()
    clean = re.sub(r"\s+", " ", clean)
    if not clean or len(clean.split()) > MAX_HEADING_WORDS:
        return None
    if strict:
        return next((name for name, pattern in STRICT_TITLES if pattern.fullmatch(clean)), None)
    for name, pattern in SECTION_PATTERNS:
        if pattern.search(clean):
            if name == "io" and not re.search(r"\b(input|output|i\s*/\s*o|io)\b", clean):
                continue
            return name
    return None


def _headings(lines: list[str], blocks: list[_Block]) -> list[tuple[int, str | None]]:
    """(line, section) of every section heading outside code. An unknown markdown
    heading as high as the current section's ("## Explanation") ends it: section None."""
    inside = set()
    for block in blocks:
        inside.update(range(block.start, block.end + 1))
    found: list[tuple[int, str | None]] = []
    current_level: int | None = None
    for index, line in enumerate(lines):
        if index in inside or not line.strip():
            continue
        for pattern, strict in HEADING_SHAPES:
            match = pattern.match(line)
            if match is None:
                continue
            section = _section_of(match.group("title"), strict)
            level = len(line.strip()) - len(line.strip().lstrip("#")) if pattern is MARKDOWN_HEADING else None
            if section is not None:
                found.append((index, section))
                current_level = level
            elif level is not None and current_level is not None and level <= current_level:
                found.append((index, None))
                current_level = None
            break
    return found


def _split_sections(text: str) -> tuple[dict[str, list[tuple[str, list[_Block]]]], list[_Block]]:
    """Each section name -> list of (text, blocks) for every heading of that name."""
    lines = text.split("\n")
    blocks = _blocks(lines)
    heads = _headings(lines, blocks)
    sections: dict[str, list[tuple[str, list[_Block]]]] = {}
    for n, (start, name) in enumerate(heads):
        if name is None:
            continue
        stop = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        body_lines = lines[start + 1 : stop]
        inner = [b for b in blocks if start < b.start < stop]
        sections.setdefault(name, []).append(("\n".join(body_lines), inner))
    return sections, blocks


def _clean_text(text: str, drop_chatter: bool = False) -> str:
    """The section's text without surrounding blank lines and rules (lines are
    kept verbatim), and for the last section without a closing remark to the user."""
    lines = text.strip("\n").split("\n")
    while True:
        while lines and (not lines[-1].strip() or HORIZONTAL_RULE.match(lines[-1])):
            lines.pop()
        if not drop_chatter or not lines:
            break
        start = len(lines) - 1  # the last paragraph goes when it opens with a closing remark
        while start > 0 and lines[start - 1].strip():
            start -= 1
        if start == 0 or not CLOSING_CHATTER.match(lines[start]):
            break
        del lines[start:]
    while lines and (not lines[0].strip() or HORIZONTAL_RULE.match(lines[0])):
        lines.pop(0)
    return "\n".join(lines).strip()


def _last_python(blocks: list[_Block]) -> _Block | None:
    python = [b for b in blocks if b.is_python and b.code.strip()]
    return python[-1] if python else None


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return re.search(rf"^\s*def\s+{name}\s*\(", code, re.M) is not None
    return name in _top_level_names(tree) or _method_owner(tree, name) is not None


def _method_owner(tree: ast.Module, name: str) -> tuple[ast.ClassDef, ast.FunctionDef] | None:
    owner = None
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == name:
                    owner = (node, item)
    return owner


def _node_lines(node: ast.stmt) -> tuple[int, int]:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return first, node.end_lineno or node.lineno


def _remove_def(code: str, name: str) -> str:
    """The code without its top-level definition of ``name`` (one block held both parts)."""
    tree = ast.parse(code)
    lines = code.split("\n")
    spans = [_node_lines(n) for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    keep = [line for i, line in enumerate(lines, 1) if not any(a <= i <= b for a, b in spans)]
    return "\n".join(keep).strip("\n")


def _hoist(code: str, tree: ast.Module, name: str) -> tuple[str, str] | ParseFailure:
    """Add a module-level ``name`` that calls the method of the same name, when
    the class can be instantiated without arguments (or the method is static)."""
    owner = _method_owner(tree, name)
    if owner is None:
        return ParseFailure(f"missing_{name}", f"no module-level def {name}")
    cls, method = owner
    decorators = {d.id for d in method.decorator_list if isinstance(d, ast.Name)}
    args = method.args
    static = "staticmethod" in decorators
    if not static:
        if not (args.posonlyargs or args.args):
            return ParseFailure(f"{name}_in_class", f"{cls.name}.{name} has no self parameter")
        args = ast.arguments(
            posonlyargs=args.posonlyargs[1:],
            args=args.args[1:] if not args.posonlyargs else args.args,
            vararg=args.vararg,
            kwonlyargs=args.kwonlyargs,
            kw_defaults=args.kw_defaults,
            kwarg=args.kwarg,
            defaults=args.defaults,
        )
    if static or "classmethod" in decorators:
        target = cls.name
    else:
        if cls.bases or cls.keywords:
            init_ok = False
        else:
            init_ok = True
        for item in cls.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                init = item.args
                required = len(init.posonlyargs) + len(init.args) - 1 - len(init.defaults)
                kw_required = sum(d is None for d in init.kw_defaults)
                init_ok = required <= 0 and kw_required == 0
        if not init_ok:
            return ParseFailure(f"{name}_in_class", f"{cls.name} cannot be built without arguments")
        target = f"{cls.name}()"
    call = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg is not None:
        call.append(f"*{args.vararg.arg}")
    call += [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    if args.kwarg is not None:
        call.append(f"**{args.kwarg.arg}")
    wrapper = (
        f"\n\n# module-level entry point for {cls.name}.{name}\n"
        f"def {name}({ast.unparse(args)}):\n"
        f"    return {target}.{name}({', '.join(call)})\n"
    )
    return code.rstrip("\n") + wrapper, f"hoisted {name} from class {cls.name}"


def _check_code(code: str, name: str, part: str, notes: list[str]) -> str | ParseFailure:
    """Syntax, and ``name`` defined at module level (hoisted from a class if sensible)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return ParseFailure("syntax_error", f"{part}: line {exc.lineno}: {exc.msg}")
    if name not in _top_level_names(tree):
        hoisted = _hoist(code, tree, name)
        if isinstance(hoisted, ParseFailure):
            return hoisted
        code, note = hoisted
        notes.append(note)
        tree = ast.parse(code)
    if name == GENERATOR_NAME:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                args = node.args
                required = len(args.posonlyargs) + len(args.args) - len(args.defaults)
                if required > 0 or any(d is None for d in args.kw_defaults):
                    return ParseFailure("input_generator_has_parameters", ast.unparse(args))
    return code


def _validate(main: str | None, io: str, generator: str | None, problem: str, notes: list[str]) -> NormalizedParts | ParseFailure:
    if not main or not main.strip():
        return ParseFailure("missing_main_solution", "no code for the main function")
    if not generator or not generator.strip():
        return ParseFailure("missing_input_generator", "no code for the input generator")
    checked_main = _check_code(main, MAIN_NAME, "main function", notes)
    if isinstance(checked_main, ParseFailure):
        return checked_main
    checked_gen = _check_code(generator, GENERATOR_NAME, "input generator", notes)
    if isinstance(checked_gen, ParseFailure):
        return checked_gen
    if not io.strip():
        return ParseFailure("missing_io_description", "no input/output description")
    if not problem.strip():
        return ParseFailure("missing_problem_statement", "no problem statement")
    return NormalizedParts(
        main_code=checked_main.strip("\n") + "\n",
        io_description=io.strip(),
        generator_code=checked_gen.strip("\n") + "\n",
        problem_statement=problem.strip(),
        notes=tuple(notes),
    )


def _section_text(sections: dict[str, list[tuple[str, list[_Block]]]], name: str) -> str:
    for text, _blocks_in_section in reversed(sections.get(name, [])):
        cleaned = _strip_outer_fence(_clean_text(text, drop_chatter=True))
        if cleaned:
            return cleaned
    return ""


def _strip_outer_fence(text: str) -> str:
    """A text section wrapped in a single fence (```text ... ```) loses the fence."""
    lines = text.split("\n")
    if len(lines) >= 2 and FENCE_LINE.match(lines[0]) and FENCE_LINE.match(lines[-1]):
        return "\n".join(lines[1:-1]).strip()
    return text


def _parse_markdown(text: str) -> NormalizedParts | ParseFailure:
    sections, blocks = _split_sections(text)
    if not blocks:
        return ParseFailure("no_code_block", "the response has no fenced code block")
    notes: list[str] = []
    main_block = _last_python([b for _, bs in sections.get("main", []) for b in bs])
    gen_block = _last_python([b for _, bs in sections.get("generator", []) for b in bs])
    python = [b for b in blocks if b.is_python and b.code.strip()]
    if main_block is None or not _defines(main_block.code, MAIN_NAME):
        candidates = [b for b in python if _defines(b.code, MAIN_NAME) and b is not gen_block]
        candidates = candidates or [b for b in python if _defines(b.code, MAIN_NAME)]
        if candidates:
            if main_block is not None or "main" not in sections:
                notes.append("main function found outside its section")
            main_block = candidates[-1]
    if gen_block is None or not _defines(gen_block.code, GENERATOR_NAME):
        candidates = [b for b in python if _defines(b.code, GENERATOR_NAME)]
        if candidates:
            notes.append("input generator found outside its section")
            gen_block = candidates[-1]
    main = main_block.code if main_block is not None else None
    generator = gen_block.code if gen_block is not None else None
    if main is not None and generator is not None and main_block is gen_block:
        try:
            main, generator = _remove_def(main, GENERATOR_NAME), _remove_def(generator, MAIN_NAME)
            notes.append("main function and input generator split from one block")
        except SyntaxError as exc:
            return ParseFailure("syntax_error", f"main function: line {exc.lineno}: {exc.msg}")
    elif generator is not None and _defines_top(generator, MAIN_NAME):
        generator = _remove_def(generator, MAIN_NAME)  # the generator block repeated main_solution
    io = _section_text(sections, "io")
    problem = _section_text(sections, "problem")
    return _validate(main, io, generator, problem, notes)


def _defines_top(code: str, name: str) -> bool:
    try:
        return name in _top_level_names(ast.parse(code))
    except SyntaxError:
        return False


# -- JSON mode ---------------------------------------------------------------------------
JSON_KEYS = {
    "main": ("main_function", "main_code", "main", "code", "main_solution", "refcode"),
    "io": ("io_description", "input_output_description", "io_requirements", "io", "input_output"),
    "generator": ("input_generator", "generator", "input_generator_code", "generator_code"),
    "problem": ("problem_statement", "problem", "question", "problem_description"),
}


def _json_object(text: str) -> dict | None:
    stripped = _strip_outer_fence(text.strip())
    try:
        value = json.loads(stripped)
        return value if isinstance(value, dict) else None
    except json.JSONDecodeError:
        pass
    start = stripped.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(stripped[start:])
            if isinstance(value, dict):
                return value
        except json.JSONDecodeError:
            pass
        start = stripped.find("{", start + 1)
    return None


def _code_value(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    lines = value.replace("\r\n", "\n").strip().split("\n")
    blocks = _blocks(lines)
    block = _last_python(blocks)
    return block.code if block is not None else value


def _parse_json(text: str) -> NormalizedParts | ParseFailure | None:
    obj = _json_object(text)
    if obj is None:
        return None
    by_key = {re.sub(r"[^a-z0-9]+", "_", str(k).lower()).strip("_"): v for k, v in obj.items()}

    def pick(part: str) -> object:
        for key in JSON_KEYS[part]:
            if key in by_key:
                return by_key[key]
        return None

    io, problem = pick("io"), pick("problem")
    if isinstance(io, (dict, list)):
        io = json.dumps(io, ensure_ascii=False, indent=2)
    return _validate(_code_value(pick("main")), io if isinstance(io, str) else "", _code_value(pick("generator")),
                     problem if isinstance(problem, str) else "", [])


def parse_normalization(text: str, json_mode: bool = False) -> NormalizedParts | ParseFailure:
    """The four parts of a normalization answer, or why it cannot be used.

    Markdown answers: the last python block of the main and generator sections
    (found by their definitions when headings are missing or renamed). JSON
    answers (``json_mode``, or a markdown parse that found no code) are read as
    an object with the keys of the JSON template."""
    if not text or not text.strip():
        return ParseFailure("empty_response", "")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if json_mode:
        parsed = _parse_json(text)
        if parsed is not None:
            return parsed
        fallback = _parse_markdown(text)
        return fallback if isinstance(fallback, NormalizedParts) else ParseFailure("invalid_json", "no JSON object")
    parsed = _parse_markdown(text)
    if isinstance(parsed, ParseFailure) and parsed.reason == "no_code_block":
        from_json = _parse_json(text)
        if from_json is not None:
            return from_json
    return parsed
