"""Slash-commands are found only where people write them, and every mistake is explained."""

from __future__ import annotations

import random

import pytest

from bot.commands import (
    DEFAULT_PREFIX,
    DESCRIPTIONS,
    MAX_COMMANDS,
    MAX_LINE_LENGTH,
    MAX_VALUE_LENGTH,
    OPEN_VERBS,
    Command,
    Parsed,
    Problem,
    Verb,
    help_text,
    parse,
    suggest,
)
from tests.conftest import load_fixture

SHA = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
NOTHING = Parsed(commands=(), problems=())


def only_command(body: str, prefix: str = DEFAULT_PREFIX) -> Command:
    parsed = parse(body, prefix)
    assert parsed.problems == ()
    assert len(parsed.commands) == 1
    return parsed.commands[0]


def only_problem(body: str, max_value_length: int = MAX_VALUE_LENGTH) -> Problem:
    parsed = parse(body, max_value_length=max_value_length)
    assert parsed.commands == ()
    assert len(parsed.problems) == 1
    return parsed.problems[0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/staging deploy", Command(Verb.DEPLOY, "/staging deploy")),
        ("/staging deploy 0d1a26e", Command(Verb.DEPLOY, "/staging deploy 0d1a26e", sha="0d1a26e")),
        (f"/staging deploy {SHA}", Command(Verb.DEPLOY, f"/staging deploy {SHA}", sha=SHA)),
        ("/staging deploy ABCDEF0", Command(Verb.DEPLOY, "/staging deploy ABCDEF0", sha="abcdef0")),
        ("/staging redeploy", Command(Verb.REDEPLOY, "/staging redeploy")),
        ("/staging archive", Command(Verb.ARCHIVE, "/staging archive")),
        ("/staging restore", Command(Verb.RESTORE, "/staging restore")),
        ("/staging destroy", Command(Verb.DESTROY, "/staging destroy")),
        ("/staging extend", Command(Verb.EXTEND, "/staging extend")),
        ("/staging extend 2d", Command(Verb.EXTEND, "/staging extend 2d", seconds=2 * 86400)),
        ("/staging extend 12h", Command(Verb.EXTEND, "/staging extend 12h", seconds=12 * 3600)),
        ("/staging extend 90m", Command(Verb.EXTEND, "/staging extend 90m", seconds=90 * 60)),
        ("/staging extend 1W", Command(Verb.EXTEND, "/staging extend 1W", seconds=7 * 86400)),
        ("/staging status", Command(Verb.STATUS, "/staging status")),
        ("/staging help", Command(Verb.HELP, "/staging help")),
        (
            "/staging set DEBUG=1",
            Command(Verb.SET, "/staging set DEBUG=1", assignments=(("DEBUG", "1"),)),
        ),
        (
            "/staging set B=2 A=1 _X=",
            Command(
                Verb.SET,
                "/staging set B=2 A=1 _X=",
                assignments=(("B", "2"), ("A", "1"), ("_X", "")),
            ),
        ),
        ("/staging unset DEBUG", Command(Verb.UNSET, "/staging unset DEBUG", keys=("DEBUG",))),
        ("/staging unset B A B", Command(Verb.UNSET, "/staging unset B A B", keys=("B", "A"))),
    ],
)
def test_each_verb_becomes_its_command(body: str, expected: Command) -> None:
    assert only_command(body) == expected


@pytest.mark.parametrize(
    ("value_as_written", "value"),
    [
        ('"hello world"', "hello world"),
        ("'x y'", "x y"),
        ("a=b=c", "a=b=c"),
        ("#not-a-comment", "#not-a-comment"),
        ('""', ""),
        ("'it''s'", "its"),
        ('"say \\"hi\\""', 'say "hi"'),
        (
            "postgres://u:p@db:5432/app?sslmode=disable",
            "postgres://u:p@db:5432/app?sslmode=disable",
        ),
        ("grüße☃", "grüße☃"),
        ('"no\u00a0break"', "no\u00a0break"),
    ],
)
def test_set_values_are_read_like_a_shell_reads_them(value_as_written: str, value: str) -> None:
    command = only_command(f"/staging set GREETING={value_as_written}")
    assert command.assignments == (("GREETING", value),)


@pytest.mark.parametrize(
    "body",
    [
        "/staging  deploy",
        "/staging\tdeploy",
        "   /staging deploy   ",
        "/staging deploy\t",
        "/staging\u00a0deploy",
        "/staging DEPLOY",
        "/Staging Deploy",
        "/STAGING deploy",
        "  /sTaGiNg   dEpLoY  ",
    ],
)
def test_spacing_and_case_do_not_matter(body: str) -> None:
    command = only_command(body)
    assert (command.verb, command.line) == (Verb.DEPLOY, body.strip())


def test_several_command_lines_between_prose_all_run_in_order() -> None:
    body = (
        "Thanks, looks good!\n"
        "/staging set FEATURE_X=on\n"
        "and then, once that is applied:\n"
        "\n"
        "/staging redeploy\n"
        "Cheers"
    )
    assert [command.verb for command in parse(body).commands] == [Verb.SET, Verb.REDEPLOY]


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_every_kind_of_line_break_separates_commands(line_break: str) -> None:
    body = line_break.join(["/staging status", "prose", "/staging help", ""])
    assert [command.verb for command in parse(body).commands] == [Verb.STATUS, Verb.HELP]


@pytest.mark.parametrize(
    "body",
    [
        "```\n/staging destroy\n```",
        "```text\n/staging destroy\n```",
        "~~~\n/staging destroy\n~~~",
        "   ```\n/staging destroy\n   ```",
        "````\n```\n/staging destroy\n````",
        "~~~\n```\n/staging destroy\n```\n~~~",
        "```\n/staging destroy\n``` not a closing fence\n```",
        "```\n/staging destroy",
        "~~~~\n/staging destroy\n~~~",
        "> /staging destroy",
        "   > /staging destroy",
        ">/staging destroy",
        "    /staging destroy",
        "\t/staging destroy",
        "  \t/staging destroy",
        "please run /staging destroy",
        "`/staging destroy`",
        "/stagingfoo",
        "/stagingdestroy",
        "/staging-bot destroy",
        "<!--\n/staging destroy\n-->",
        "<!-- a template hint:\n/staging destroy\n-->",
        "",
        "   \n\t\n",
    ],
)
def test_lines_people_do_not_mean_as_commands_are_ignored(body: str) -> None:
    assert parse(body) == NOTHING


@pytest.mark.parametrize(
    "body",
    [
        "```\n/staging destroy\n```\n/staging status",
        "~~~ shell\n/staging destroy\n~~~~~\n/staging status",
        "````\n```\n````\n/staging status",
        "    ```\n/staging status",
        "``` not `a fence\n/staging status",
        "> /staging destroy\n/staging status",
        "<!-- one line -->\n/staging status",
        "<!--\n/staging destroy\n-->\n/staging status",
    ],
)
def test_commands_after_code_quotes_and_comments_still_run(body: str) -> None:
    assert only_command(body).verb == Verb.STATUS


@pytest.mark.parametrize(
    ("prefix", "body", "verb"),
    [
        ("!st.g", "!st.g status", Verb.STATUS),
        ("!st.g", "!ST.G deploy", Verb.DEPLOY),
        ("@bot", "@Bot help", Verb.HELP),
        ("(x)+", "(x)+ archive", Verb.ARCHIVE),
    ],
)
def test_a_custom_prefix_is_matched_literally(prefix: str, body: str, verb: Verb) -> None:
    assert only_command(body, prefix).verb == verb


@pytest.mark.parametrize(
    ("prefix", "body"),
    [
        ("!st.g", "!stag status"),
        ("!st.g", "!st.gstatus"),
        ("!st.g", "/staging status"),
        ("(x)+", "xx archive"),
    ],
)
def test_a_custom_prefix_is_not_a_pattern(prefix: str, body: str) -> None:
    assert parse(body, prefix) == NOTHING


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("/staging", "no command after `/staging`: see `/staging help`"),
        ('/staging ""', "no command after `/staging`: see `/staging help`"),
        ("/staging deplyo", "`deplyo` is not a command; did you mean `/staging deploy`?"),
        ("/staging stauts", "`stauts` is not a command; did you mean `/staging status`?"),
        ("/staging frobnicate", "`frobnicate` is not a command"),
        ("/staging deploy abc", "`abc` is not a commit SHA: give 7 to 40 hex characters"),
        ("/staging deploy 0d1a26g", "`0d1a26g` is not a commit SHA: give 7 to 40 hex characters"),
        (f"/staging deploy {SHA}0", f"`{SHA[:39]}…` is not a commit SHA"),
        ("/staging deploy main", "`main` is not a commit SHA"),
        ('/staging deploy ""', '`""` is not a commit SHA'),
        ("/staging deploy 0d1a26e now", "`deploy` takes at most one commit SHA, got `0d1a26e now`"),
        ("/staging redeploy x", "`redeploy` takes no arguments, got `x`"),
        ("/staging archive now please", "`archive` takes no arguments, got `now please`"),
        ("/staging restore x", "`restore` takes no arguments, got `x`"),
        ("/staging destroy x", "`destroy` takes no arguments, got `x`"),
        ("/staging status x", "`status` takes no arguments, got `x`"),
        ("/staging extend forever", "`forever` is not a duration: give a number and a unit"),
        ("/staging extend 2", "`2` is not a duration"),
        ("/staging extend 0d", "`0d` is not a duration"),
        ("/staging extend -1d", "`-1d` is not a duration"),
        ("/staging extend 1.5d", "`1.5d` is not a duration"),
        ("/staging extend 2s", "`2s` is not a duration"),
        ("/staging extend 1d 2h", "`extend` takes at most one duration, got `1d 2h`"),
        ("/staging help set", "`help` takes no arguments, got `set`"),
        ("/staging set", "`set` needs at least one KEY=VALUE"),
        ("/staging set DEBUG", "`DEBUG` is not KEY=VALUE"),
        ("/staging set =1", "`=1` has no key before the `=`"),
        ("/staging set feature_x=on", "keys are upper case: `FEATURE_X`"),
        ("/staging set Feature_X=on", "keys are upper case: `FEATURE_X`"),
        ("/staging set 1X=on", "`1X` is not a valid key: use A-Z, 0-9 and _"),
        ("/staging set A-B=on", "`A-B` is not a valid key"),
        ("/staging set ÄPFEL=on", "`ÄPFEL` is not a valid key"),
        ("/staging set straße=on", "`straße` is not a valid key: use A-Z"),
        ("/staging set " + "K" * 129 + "=1", "is longer than 128 characters"),
        ("/staging set A=" + "x" * 1025, "the value of `A` is 1025 characters long; at most 1024"),
        ("/staging set A='x\ty'", "the value of `A` contains the control character U+0009"),
        ('/staging set A="\x00"', "the value of `A` contains the control character U+0000"),
        ('/staging set A="\x7f"', "the value of `A` contains the control character U+007F"),
        ("/staging set A=\ud800", "the value of `A` contains U+D800, which is not a character"),
        ("/staging set A=1 A=2", "`A` is set twice in one command"),
        ('/staging set GREETING="hello', "a quote is not closed"),
        ("/staging set A='x y", "a quote is not closed"),
        ("/staging set A=x\\", "the line ends in a backslash that escapes nothing"),
        ("/staging unset", "`unset` needs at least one KEY"),
        ("/staging unset debug", "keys are upper case: `DEBUG`"),
        ("/staging unset A=1", "`A=1` is not a valid key"),
        ('/staging unset ""', "a key can't be empty"),
        ("/staging unset " + "K" * 129, "is longer than 128 characters"),
    ],
)
def test_each_mistake_is_explained(body: str, message: str) -> None:
    problem = only_problem(body)
    assert problem.line == body.strip()
    assert message in problem.message


def test_a_key_of_128_characters_and_a_value_of_the_limit_are_accepted() -> None:
    key, value = "K" * 128, "v" * MAX_VALUE_LENGTH
    assert only_command(f"/staging set {key}={value}").assignments == ((key, value),)


def test_the_value_limit_is_the_callers() -> None:
    assert only_problem("/staging set A=123456", max_value_length=5).message.startswith(
        "the value of `A` is 6 characters long; at most 5"
    )
    assert parse("/staging set A=12345", max_value_length=5).commands[0].assignments == (
        ("A", "12345"),
    )


def test_one_bad_assignment_refuses_the_whole_line() -> None:
    parsed = parse("/staging set GOOD=1 bad=2 ALSO_GOOD=3")
    assert parsed.commands == ()
    assert "`BAD`" in parsed.problems[0].message


def test_echoed_text_cannot_escape_its_code_span() -> None:
    message = only_problem("/staging deploy `@everyone`").message
    assert message.startswith("`` `@everyone` `` is not a commit SHA")


def test_problems_and_commands_keep_the_order_of_their_lines() -> None:
    parsed = parse("/staging nope\n/staging status\n/staging set x=1\n/staging help")
    assert [command.verb for command in parsed.commands] == [Verb.STATUS, Verb.HELP]
    assert [problem.line for problem in parsed.problems] == ["/staging nope", "/staging set x=1"]


def test_only_the_first_command_lines_of_a_comment_run() -> None:
    lines = [f"/staging set N={n}" for n in range(MAX_COMMANDS + 3)]
    lines[1] = "/staging nope"  # a faulty command line counts towards the limit too
    parsed = parse("\n".join(lines))
    assert len(parsed.commands) == MAX_COMMANDS - 1
    assert parsed.commands[-1].assignments == (("N", str(MAX_COMMANDS - 1)),)
    assert parsed.problems[-1] == Problem(
        f"/staging set N={MAX_COMMANDS}",
        f"only the first {MAX_COMMANDS} command lines of a comment are run; skipped 3 from here on",
    )
    assert len(parsed.problems) == 2


def test_a_huge_command_line_is_refused_unread() -> None:
    line = "/staging set A=" + "x" * MAX_LINE_LENGTH
    assert only_problem(line).message == (
        f"this command line is {len(line)} characters long; at most {MAX_LINE_LENGTH} are read"
    )


@pytest.mark.parametrize(
    "body",
    [
        "",
        "\x00",
        "/staging\x00",
        "/staging \x00deploy",
        "/staging set A=\x00",
        "\ud800/staging",
        "/staging \udfff",
        "/staging set \ud800=1",
        "/staging " + "a" * 100_000,
        "/staging " + "'" * 1000,
        "`" * 100_000,
        "<!--" * 10_000,
        "\r" * 10_000 + "/staging status",
        "/staging " + "\\" * 10_001,
        "/staging 𝔡𝔢𝔭𝔩𝔬𝔶",
        "/staging İ",
        "/staging set ﬀ=1",
    ],
)
def test_no_input_makes_parsing_fail(body: str) -> None:
    assert isinstance(parse(body), Parsed)


def test_random_comments_never_make_parsing_fail() -> None:
    pieces = ["/staging", " ", "\t", "\n", "\r", "```", "~~~", ">", "<!--", "-->", "'", '"']
    pieces += ["\\", "=", "set", "unset", "deploy", "A", "a", "\x00", "\ud800", "é", "#"]
    chooser = random.Random(1234)  # a fixed seed keeps the test repeatable
    for _ in range(2000):
        body = "".join(chooser.choice(pieces) for _ in range(chooser.randrange(30)))
        assert isinstance(parse(body), Parsed)


def test_a_blank_prefix_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="prefix"):
        parse("/staging status", prefix="  ")


@pytest.mark.parametrize(
    ("word", "verb"),
    [("deplyo", "deploy"), ("DEPLOY", "deploy"), ("stauts", "status"), ("unst", "unset")],
)
def test_a_typo_suggests_the_nearest_verb(word: str, verb: str) -> None:
    assert suggest(word) == verb


@pytest.mark.parametrize("word", ["frobnicate", "x", "", "d" * 10_000, "\ud800"])
def test_a_word_far_from_every_verb_suggests_nothing(word: str) -> None:
    assert suggest(word) is None


def test_only_status_and_help_are_open_to_everyone() -> None:
    assert sorted(OPEN_VERBS) == [Verb.HELP, Verb.STATUS]


@pytest.mark.parametrize("prefix", [DEFAULT_PREFIX, "!st.g"])
def test_help_lists_every_verb_with_its_arguments_under_the_given_prefix(prefix: str) -> None:
    lines = help_text(prefix).splitlines()
    assert len(lines) == len(Verb)
    for verb, line in zip(Verb, lines, strict=True):
        assert line.startswith(f"- `{prefix} {verb}")
        assert line.endswith(DESCRIPTIONS[verb])
    assert f"`{prefix} deploy [sha]`" in lines[0]
    assert f"`{prefix} set KEY=VALUE [KEY=VALUE ...]`" in help_text(prefix)
    assert f"`{prefix} unset KEY [KEY ...]`" in help_text(prefix)
    assert f"`{prefix} extend [duration]`" in help_text(prefix)


def test_help_names_no_other_prefix() -> None:
    assert DEFAULT_PREFIX not in help_text("!st.g")


@pytest.mark.parametrize(
    ("host", "fixture", "path"),
    [
        ("github", "issue_comment.created.json", ("comment", "body")),
        (
            "github",
            "issue_comment.created.on-pull-request.captured-go-scm.json",
            ("comment", "body"),
        ),
        ("gitlab", "note.merge_request.json", ("object_attributes", "note")),
    ],
)
def test_real_comments_hold_no_commands_until_someone_writes_one(
    host: str, fixture: str, path: tuple[str, str]
) -> None:
    payload = load_fixture(fixture, host=host)
    body = payload[path[0]][path[1]]
    assert parse(body) == NOTHING
    assert only_command(f"{body}\r\n\r\n/staging deploy").verb == Verb.DEPLOY


@pytest.mark.parametrize(
    ("body", "verb", "note"),
    [
        ("/staging qa-pass", Verb.QA_PASS, ""),
        ("/staging qa-pass looks good", Verb.QA_PASS, "looks good"),
        ("/staging QA-Pass   checkout\tand  refunds ok ", Verb.QA_PASS, "checkout and refunds ok"),
        # A note is prose: an apostrophe is not an unclosed quote, quotes around it go.
        ("/staging qa-pass don't merge before Friday", Verb.QA_PASS, "don't merge before Friday"),
        (
            '/staging qa-fail "the cart is empty after login"',
            Verb.QA_FAIL,
            "the cart is empty after login",
        ),
        (
            "/staging qa-fail KEY=VALUE is just words here",
            Verb.QA_FAIL,
            "KEY=VALUE is just words here",
        ),
    ],
)
def test_qa_verbs_keep_the_rest_of_the_line_as_their_note(body: str, verb: Verb, note: str) -> None:
    command = only_command(body)
    assert (command.verb, command.note, command.line) == (verb, note, body.strip())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("/staging qa-fail", "`qa-fail` needs a reason"),
        ("/staging qa-fail   ''  ", "`qa-fail` needs a reason"),
        ("/staging qa-pass " + "x" * 501, "the note is 501 characters long; at most 500"),
        ("/staging qa-pass bell\x07", "the note contains U+0007"),
        ("/staging qa-pas", "did you mean `/staging qa-pass`?"),
    ],
)
def test_qa_verbs_explain_a_missing_reason_or_an_unusable_note(body: str, message: str) -> None:
    assert message in only_problem(body).message


def test_help_lists_the_qa_verbs_with_their_arguments() -> None:
    text = help_text("/staging")
    assert "`/staging qa-pass [note]`" in text and "`/staging qa-fail <reason>`" in text
    assert "staging/qa" in DESCRIPTIONS[Verb.QA_PASS]
