"""[[data]] and [[flows]]: validation is static and complete. Thirty mistakes, each one
line naming the file and the key (and the data file where it is at fault), before
anything is sent; and what a valid journey compiles to."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.control.plan import make_job
from harness.core.templates import Ref, compile_template
from harness.errors import ScenarioError
from harness.scenario import load_scenario

GOOD = {
    "users.csv": 'id,name\n1,linus\n2,"a, ""b"""\n',
    "empty.csv": "",
    "header.csv": "id,name\n",
    "latin1.csv": "id,name\n1,J\xfcrgen\n".encode("latin-1"),
    "ragged.csv": "id,name\n1\n",
    "dupe.csv": "id,id\n1,2\n",
}

FLOW = '''[[data]]
name = "users"
file = "users.csv"
[[flows]]
name = "f"
[[flows.steps]]
name = "login"
method = "POST"
path = "/auth/login"
body = '{"user": "{{users.name}}"}'
extract = { token = { json = "$.token" } }
[[flows.steps]]
name = "me"
path = "/auth/me/{{users.id}}"
headers = { Authorization = "Bearer {{token}}" }
'''


def load(tmp_path: Path, text: str):
    for name, content in GOOD.items():
        data = content.encode() if isinstance(content, str) else content
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "s.toml"
    path.write_text(text + '\n[run]\nduration = "1s"\n[[models]]\nmodel = "thread"\n')
    return load_scenario(path)


def test_a_valid_journey():
    pieces = compile_template("/u/{{users.id}}?n={{ iteration }}&r={{random_int(1, 5)}}")
    assert pieces == ("/u/", Ref("data", "users", "id"), "?n=", Ref("iteration"), "&r=",
                      Ref("randint", "1", "5"))


def test_the_journey_travels_in_the_job(tmp_path):
    sc = load(tmp_path, FLOW)
    assert sc.result_names == ["login", "me", "flow:f"]
    job = make_job(sc, sc.models[0], "http://127.0.0.1:1", 1, 2)
    from harness.core.datatable import DataRows
    d = job.data[0]
    rows = DataRows(d["blob"], len(d["columns"]), d["offset"])
    assert [rows[i] for i in range(len(rows))] == [("1", "linus"), ("2", 'a, "b"')]
    assert job.flows[0]["steps"][0]["extract"] == [{"var": "token", "kind": "json",
                                                    "expr": "$.token"}]
    assert job.weights == [1.0] and job.stream_index == 1 and job.stream_count == 2


MISTAKES = [
    # data
    (FLOW.replace('file = "users.csv"', 'file = "missing.csv"'),
     "[[data]][0].file", "no such file"),
    (FLOW.replace('file = "users.csv"', 'file = "empty.csv"'), "[[data]][0].file", "is empty"),
    (FLOW.replace('file = "users.csv"', 'file = "header.csv"'),
     "[[data]][0].file", "at least one row"),
    (FLOW.replace('file = "users.csv"', 'file = "latin1.csv"'),
     "[[data]][0].file", "expected UTF-8"),
    (FLOW.replace('file = "users.csv"', 'file = "ragged.csv"'),
     "[[data]][0].file", "line 2: expected 2 fields"),
    (FLOW.replace('file = "users.csv"', 'file = "dupe.csv"'),
     "[[data]][0].file", "unique column names"),
    (FLOW.replace('file = "users.csv"', 'file = "users.csv"\norder = "shuffled"'),
     "[[data]][0].order", "expected one of per-user, sequential, random"),
    (FLOW.replace('name = "users"', 'name = "users"\ncolumns = 3'),
     "[[data]][0].columns", "unknown key"),
    (FLOW.replace('name = "users"', 'name = "bad name"'), "[[data]][0].name",
     "expected a name of letters"),
    (FLOW + '[[data]]\nname = "users"\nfile = "users.csv"\n', "[[data]][1].name",
     "unique name"),
    ('data = 5\n' + FLOW[FLOW.index("[[flows]]"):], "[[data]]", "expected an array"),
    # templates and names
    (FLOW.replace("{{users.id}}", "{{users.email}}"), "[[flows]][0].steps[1].path",
     "has no column 'email'"),
    (FLOW.replace("{{users.id}}", "{{people.id}}"), "[[flows]][0].steps[1].path",
     "no [[data]] named 'people'"),
    (FLOW.replace("Bearer {{token}}", "Bearer {{tokn}}"),
     "[[flows]][0].steps[1].headers.Authorization", "{{tokn}} is not defined"),
    (FLOW.replace("{{users.id}}", "{{users.id"), "[[flows]][0].steps[1].path",
     "an unclosed {{"),
    (FLOW.replace("{{users.id}}", "{{random_int(9, 1)}}"), "[[flows]][0].steps[1].path",
     "low bound first"),
    (FLOW.replace("{{users.id}}", "{{ 1 + 1 }}"), "[[flows]][0].steps[1].path",
     "is not a name"),
    (FLOW.replace('"{{users.name}}"', '"{{token}}"'), "[[flows]][0].steps[0].body",
     "{{token}} is not defined"),   # used before the step that extracts it
    # extraction
    (FLOW.replace('json = "$.token"', 'json = "$..[?(@"'),
     "[[flows]][0].steps[0].extract.token.json", "expected a JSONPath"),
    (FLOW.replace('{ json = "$.token" }', '{ regex = "(unclosed" }'),
     "[[flows]][0].steps[0].extract.token.regex", "expected a regular expression"),
    (FLOW.replace('{ json = "$.token" }', '{ xpath = "//a" }'),
     "[[flows]][0].steps[0].extract.token", "expected one of"),
    (FLOW.replace('{ json = "$.token" }', '{ json = "$.a", regex = "b" }'),
     "[[flows]][0].steps[0].extract.token", "expected one of"),
    (FLOW.replace("token = {", "iteration = {").replace("{{token}}", "{{iteration}}"),
     "[[flows]][0].steps[0].extract.iteration", "not a built-in"),
    (FLOW.replace('extract = { token = { json = "$.token" } }', 'extract = "token"'),
     "[[flows]][0].steps[0].extract", "expected a table"),
    # flows and steps
    (FLOW.replace('name = "me"', 'name = "login"'), "[[flows]][0].steps[1].name",
     "unique name"),
    (FLOW.replace('name = "me"', 'name = "flow:me"'), "[[flows]][0].steps[1].name",
     "unique name"),
    (FLOW.replace('name = "f"', 'name = "f"\nweight = -1'), "[[flows]][0].weight",
     "expected"),
    (FLOW.replace('name = "me"', 'name = "me"\nthink_time = "forever"'),
     "[[flows]][0].steps[1].think_time", "expected a duration"),
    (FLOW.replace('name = "me"', 'name = "me"\nretries = 3'), "[[flows]][0].steps[1].retries",
     "unknown key"),
    (FLOW[:FLOW.index("[[flows.steps]]")], "[[flows]][0].steps", "expected 1 to 100"),
    (FLOW + '[[flows]]\nname = "f"\n[[flows.steps]]\npath = "/"\n', "[[flows]][1].name",
     "unique flow name"),
    (FLOW.replace('path = "/auth/me/{{users.id}}"', 'path = "auth/me"'),
     "[[flows]][0].steps[1].path", 'a path starting with "/"'),
    (FLOW + '[load]\ncookies = "yes"\n', "[load].cookies", "expected true or false"),
]


@pytest.mark.parametrize("text, key, message", MISTAKES,
                         ids=[f"{i:02d}-{m[1]}" for i, m in enumerate(MISTAKES)])
def test_every_mistake_names_file_and_key(tmp_path, text, key, message):
    with pytest.raises(ScenarioError) as err:
        load(tmp_path, text)
    line = str(err.value)
    assert line.startswith(f"s.toml: {key}: ") and message in line, line
    assert "\n" not in line
    if key == "[[data]][0].file" and "no such file" not in message:
        assert str(tmp_path) in line   # the data file at fault is named


def test_there_are_thirty_mistakes():
    assert len(MISTAKES) >= 30


WIRE_FLOW = '''[[data]]
name = "users"
file = "users.csv"
[[flows]]
name = "w"
[[flows.steps]]
name = "login"
method = "POST"
path = "/auth/login"
headers = { "Content-Type" = "application/json" }
body = '{"user": "{{users.name}}", "n": {{iteration}}}'
extract = { token = { json = "$.token" } }
[[flows.steps]]
name = "me"
path = "/auth/me/{{users.name}}"
headers = { Authorization = "Bearer {{token}}", Accept = "text/plain" }
[[flows.steps]]
name = "empty-post"
method = "POST"
path = "/x"
[[flows.steps]]
name = "maybe-body"
path = "/y"
body = "{{token2}}"
[[flows.steps]]
name = "fixed"
method = "PUT"
path = "/z"
body = "static"
'''


@pytest.mark.parametrize("cookies", [True, False])
def test_the_fast_engines_bytes_equal_every_other_models_request(tmp_path, cookies):
    """next_wire (the fast engine) and next_request (every other model) put the same
    request on the wire: line, headers in order, Content-Length by wire.length_for, the
    jar's Cookie; escaping by where a value lands (a CSV name with a quote and a comma)."""
    from harness.clients.flows import prepare
    from harness.core.extraction import Answer
    from harness.transports.wire import base_headers, length_for
    text = WIRE_FLOW.replace('extract = { token = { json = "$.token" } }',
                             'extract = { token = { json = "$.token" }, token2 = '
                             '{ json = "$.empty" } }')
    sc = load(tmp_path, text.replace("[[data]]", f"[load]\ncookies = {str(cookies).lower()}"
                                     "\n[[data]]"))
    job = make_job(sc, sc.models[0], "http://127.0.0.1:8080/base", 0, 1)
    flows, user_of = prepare(job, base_headers("127.0.0.1", 8080))
    answers = [Answer(200, b'{"token": "t-k", "empty": ""}', [("Set-Cookie", "sid=s1")])]
    sent = {}
    for user_index in (0, 1):
        a, b = user_of(user_index).start(flows[0]), user_of(user_index).start(flows[0])
        for i in range(5):
            data, out = a.next_wire(), b.next_request()
            sent[user_index, i] = data
            expected = [f"{out.method} {out.path} HTTP/1.1",
                        *(f"{k}: {v}" for k, v in out.headers)]
            # every model's Outgoing carries Content-Length last, by wire.length_for
            length = length_for(out.method, out.body)
            assert (out.headers[-1] == ("Content-Length", str(length))) == (length
                                                                           is not None)
            raw = ("\r\n".join(expected) + "\r\n\r\n").encode("ascii") + out.body
            assert data == raw, (i, data, raw)
            answer = answers[0] if i == 0 else Answer(200, b"", [])
            assert a.answer(answer) is None and b.answer(answer) is None
    assert sent[1, 0].endswith(b'{"user": "a, \\"b\\"", "n": 0}')   # JSON-escaped
    assert sent[1, 1].startswith(b"GET /base/auth/me/a%2C%20%22b%22 HTTP/1.1\r\n")
    assert b"Authorization: Bearer t-k\r\n" in sent[1, 1]
    # a step header replacing a default (Accept) takes the default's place
    assert b"User-Agent: loadharness/" in sent[1, 1]
    assert sent[1, 1].index(b"Accept: text/plain") < sent[1, 1].index(b"Accept-Encoding")
    assert b"Content-Length: 0\r\n" in sent[1, 2]   # POST without a body
    assert b"Content-Length" not in sent[1, 3]      # GET whose body rendered empty
    assert (b"Cookie: sid=s1" in sent[1, 4]) == cookies


def test_a_non_ascii_value_fails_the_step_the_same_way_in_every_model(tmp_path):
    """An extracted value that is not ASCII cannot go into a header in any model (the
    libraries would disagree on its bytes): template_failed from both renderings."""
    from harness.clients.flows import prepare
    from harness.core.extraction import Answer
    from harness.core.templates import StepFailed
    from harness.transports.wire import base_headers
    sc = load(tmp_path, WIRE_FLOW.replace('extract = { token = { json = "$.token" } }',
                                          'extract = { token = { json = "$.token" }, '
                                          'token2 = { json = "$.token" } }'))
    job = make_job(sc, sc.models[0], "http://127.0.0.1:8080", 0, 1)
    flows, user_of = prepare(job, base_headers("127.0.0.1", 8080))
    a, b = user_of(0).start(flows[0]), user_of(0).start(flows[0])
    a.next_wire(), b.next_request()
    answer = Answer(200, b'{"token": "t\\u00e9k"}', [])
    assert a.answer(answer) is None and b.answer(answer) is None
    for render in (a.next_wire, b.next_request):
        with pytest.raises(StepFailed, match="ASCII"):
            render()


def test_regex_extraction_is_linear_time():
    """`(a+)+$` against 40 a's and a b: Python's backtracking re takes 2^40 steps (the
    model stalled, 34 s per answer); RE2 answers at once. Bounded by a child process with a
    minute's timeout, so a regression fails instead of hanging the suite."""
    import subprocess
    import sys
    code = ("from harness.core.extraction import Answer, CookieJar, Extract, compile_extract\n"
            "f = compile_extract(Extract('v', 'regex', '(a+)+$'))\n"
            "print(f(Answer(200, b'a' * 40 + b'b', []), CookieJar()))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "None", proc.stderr
    assert proc.stderr == ""   # RE2's own logging stays off


def test_what_re2_refuses_runs_on_re_and_is_said(tmp_path):
    sc = load(tmp_path, FLOW.replace('{ json = "$.token" }', r'{ regex = "(t)\\1(k+)" }'))
    assert len(sc.notes) == 1
    note = sc.notes[0]
    assert "[[flows]][0].steps[0].extract.token.regex" in note and "RE2 cannot run" in note
    from harness.core.extraction import Answer, CookieJar, Extract, compile_extract
    f = compile_extract(Extract("v", "regex", r"(t)\1(k+)"))
    assert f(Answer(200, b"xttkk", []), CookieJar()) == "t"
    assert not load(tmp_path, FLOW.replace('{ json = "$.token" }', '{ regex = "t(k+)" }')).notes


@pytest.mark.parametrize("value", ['"two\nlines"', "J\u00fcrgen", '"nul\0"'])
def test_a_data_value_that_cannot_go_into_a_header_is_refused_at_validation(tmp_path, value):
    """Not at run time, where every iteration that drew the row failed template_failed:
    one line naming the key, the file, the row and the column -- not the value."""
    (tmp_path / "h.csv").write_text(f"id,name\n1,ok\n2,{value}\n", encoding="utf-8")
    text = FLOW.replace('file = "users.csv"', 'file = "h.csv"').replace(
        'headers = { Authorization = "Bearer {{token}}" }',
        'headers = { Authorization = "Bearer {{token}}", X-Name = "{{users.name}}" }')
    with pytest.raises(ScenarioError) as err:
        load(tmp_path, text)
    message = str(err.value)
    assert err.value.key == "[[flows]][0].steps[1].headers.X-Name", message
    assert "h.csv data row 2, column 'name'" in message and "\n" not in message
    assert "rgen" not in message and "lines" not in message
    # the same value in a path is percent-encoded: no refusal
    assert load(tmp_path, FLOW.replace('file = "users.csv"', 'file = "h.csv"').replace(
        "/auth/me/{{users.id}}", "/auth/me/{{users.name}}"))
