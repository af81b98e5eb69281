"""Axioms are judged by identity: the constant's full name as Lean stores it, never
the short way Lean prints it after `open`, `export` or inside a namespace.

Every case runs against real Lean, in both directions: the impostor is rejected,
the genuine neighbour (the same shape, honest) verified, on both pools, through
the Python API, the CLI and both HTTP APIs (compiled modules reach the last two
through LEAN_PATH). The impostors are what the issue found verified: a private `propext` (or
`Classical.choice`) in the task's header, `Unsafe.propext` printed as `propext`
after `open Unsafe`, a header leaving `namespace Unsafe` open around its own
`propext`, and a private axiom inside an imported module; and, found later, an
allowed axiom with the real name and type declared by a module other than Init
(beside that module's own `Quot`, it proves False). The genuine proofs are what
was rejected: `open Classical` after the proof or at the end of the header,
`export Classical (choice)`, `open Quot`, and a harmless `Foo.propext` opened
beside the real one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PRELUDE_HEADER, ROOT, bare_lean_accepts
from mathagent.verify.assemble import CANONICAL_AXIOMS
from mathagent.verify.declarations import imported_from
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain, knows_option
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import VerifyOptions, verify_tasks
from serve_support import serving

# The prelude header with no axioms of its own: each case adds the one it is about.
BASE = (
    PRELUDE_HEADER.replace("axiom cheat : False\n", "")
    .replace("axiom sorryAx (α : Sort u) (synthetic : Bool) : α\n", "")
    .replace("axiom propext {a b : Prop} : (a → b) → (b → a) → Eq a b\n", "")
)
FIVE = "theorem two_add_two_is_five : Eq (N.add two two) (N.s four) :="  # false: only an impostor proves it

# (id, header, formal_statement, proof): each proves 2 + 2 = 5 through an impostor.
IMPOSTORS = [
    ("private_propext", BASE + "private axiom propext : False\n", FIVE, " False.elim propext"),
    ("private_choice", BASE + "private axiom Classical.choice : False\n", FIVE, " False.elim Classical.choice"),
    ("opened_unsafe", BASE + "axiom Unsafe.propext : False\n", FIVE, " False.elim Unsafe.propext\nopen Unsafe\n"),
    (
        "exported_unsafe",
        BASE + "axiom Unsafe.propext : False\n",
        FIVE,
        " False.elim Unsafe.propext\nexport Unsafe (propext)\n",
    ),
    ("namespace_left_open", BASE + "namespace Unsafe\naxiom propext : False\n", FIVE, " False.elim propext"),
]
IMPOSTOR_REASONS = {
    "private_propext": ("axiom:_private.", ".0.propext"),
    "private_choice": ("axiom:_private.", ".0.Classical.choice"),
    "opened_unsafe": ("axiom:Unsafe.propext", ""),
    "exported_unsafe": ("axiom:Unsafe.propext", ""),
    "namespace_left_open": ("axiom:Unsafe.propext", ""),
}

# A header with the allowed axioms declared in it, which the user trusts by name (--allow-axiom):
# the prelude Lean has no Init to bring the real ones, and the names are what is tested.
TRUSTED = (
    BASE
    + "axiom propext {a b : Prop} : (a → b) → (b → a) → Eq a b\n"
    + "namespace Classical\naxiom choice {p : Prop} : (p → p) → p\nend Classical\n"
)
TRUST = ("propext", "Classical.choice")
CHOICE = "theorem by_choice (p : Prop) (h : p → p) : p :="
PROPEXT = "theorem by_propext {a b : Prop} (f : a → b) (g : b → a) : Eq a b :="
# (id, header, formal_statement, proof, axioms it must report): each is honest.
GENUINE = [
    ("open_classical_after", TRUSTED, CHOICE, " Classical.choice h\nopen Classical\n", ["Classical.choice"]),
    ("header_opens_classical", TRUSTED + "open Classical\n", CHOICE, " choice h", ["Classical.choice"]),
    ("export_choice", TRUSTED, CHOICE, " Classical.choice h\nexport Classical (choice)\n", ["Classical.choice"]),
    (
        "harmless_foo_propext",
        TRUSTED,
        PROPEXT,
        " propext f g\nnoncomputable def Foo.propext : N := two\nopen Foo\n",
        ["propext"],
    ),
    ("header_namespace_open", TRUSTED + "namespace Work\n", PROPEXT, " propext f g", ["propext"]),
]


def _trusting(options: VerifyOptions) -> VerifyOptions:
    return dataclasses.replace(options, allow_axioms=TRUST)


def _verify(lean: LeanToolchain, options: VerifyOptions, tasks: list[VerifyTask]) -> dict[str, Verdict]:
    return {v.id: v for v in verify_tasks(lean, options, tasks)}


def _impostor_tasks() -> list[VerifyTask]:
    return [VerifyTask(id=i, header=h, formal_statement=s, proof=p) for i, h, s, p in IMPOSTORS]


def _genuine_tasks() -> list[VerifyTask]:
    return [VerifyTask(id=i, header=h, formal_statement=s, proof=p) for i, h, s, p, _ in GENUINE]


def _assert_impostor(verdict: Verdict | dict[str, Any], ident: str) -> None:
    row = verdict.to_dict() if isinstance(verdict, Verdict) else verdict
    prefix, suffix = IMPOSTOR_REASONS[ident]
    assert row["verdict"] == "rejected", row
    assert len(row["reasons"]) == 1 and row["reasons"][0].startswith(prefix), row
    assert row["reasons"][0].endswith(suffix), row


# ---------------------------------------------------------------- the Python API, both pools


def test_impostor_axioms_are_rejected_even_when_their_short_name_is_trusted(
    lean: LeanToolchain, options: VerifyOptions
) -> None:
    for trusting in (options, _trusting(options)):
        got = _verify(lean, trusting, _impostor_tasks())
        for ident, *_ in IMPOSTORS:
            _assert_impostor(got[ident], ident)


def test_genuine_proofs_verify_whatever_is_opened(lean: LeanToolchain, options: VerifyOptions) -> None:
    got = _verify(lean, _trusting(options), _genuine_tasks())
    for ident, _, _, _, axioms in GENUINE:
        assert got[ident].verified, got[ident]
        assert got[ident].axioms == axioms, got[ident]


def test_an_untrusted_header_axiom_is_still_refused_by_its_full_name(
    lean: LeanToolchain, options: VerifyOptions
) -> None:
    # not trusting the header: the genuine proofs stop at the header's own axioms, named in full
    got = _verify(lean, options, _genuine_tasks())
    for ident, *_ in GENUINE:
        assert got[ident].verdict == "rejected" and got[ident].reasons == ["header_axiom"], got[ident]


def test_a_private_axiom_inside_an_imported_module(lean_with_modules: LeanToolchain, options: VerifyOptions) -> None:
    # `Evil` proves False from its own private `propext`; before, `#print axioms` said `propext✝`
    task = VerifyTask(id="evil", header="prelude\nimport Evil\n", formal_statement="theorem f : False :=", proof=" bad")
    [verdict] = verify_tasks(lean_with_modules, _trusting(options), [task])
    assert verdict.verdict == "rejected" and verdict.reasons == ["axiom:_private.Evil.0.propext"], verdict


CANON = "prelude\nimport Init.Canon\n"
QUOT = "theorem by_sound (r : Prop → Prop → Prop) (a b : Prop) (h : r a b) : Eq (Quot.mk r a) (Quot.mk r b) :="


@pytest.mark.parametrize(
    ("header", "statement", "proof", "axioms"),
    [
        (CANON, "theorem c (p : Prop) (h : Nonempty p) : p :=", " Classical.choice h\nopen Classical\n", "choice"),
        (CANON + "open Classical\n", "theorem c (p : Prop) (h : Nonempty p) : p :=", " choice h", "choice"),
        (CANON, QUOT, " Quot.sound h\nopen Quot\n", "sound"),
        (
            CANON,
            "theorem e {a : Prop} : Eq a a :=",
            " propext (Iff.intro (fun h => h) (fun h => h))\nnoncomputable def Foo.propext : Prop := False\nopen Foo\n",
            "propext",
        ),
    ],
    ids=["open-classical", "header-opens-classical", "open-quot", "foo-propext"],
)
def test_imported_real_axioms_need_no_trust_and_survive_open(
    lean_with_modules: LeanToolchain, options: VerifyOptions, header: str, statement: str, proof: str, axioms: str
) -> None:
    # `Init.Canon` declares the allowed axioms as Init does: imported, with their real types, they
    # are the real ones by default (no --allow-axiom), under their full names
    task = VerifyTask(id="t", header=header, formal_statement=statement, proof=proof)
    [verdict] = verify_tasks(lean_with_modules, options, [task])
    assert verdict.verified, verdict
    full = {"choice": "Classical.choice", "sound": "Quot.sound", "propext": "propext"}[axioms]
    assert verdict.axioms == [full], verdict


# Definitions over an imported `Quot`; with `FakeQuot` (an inductive `Quot`, so `Quot.rec`
# exists and reads the element back) `Quot.sound` proves `Eq B.t B.f`, hence False.
QUOT_WORLD = """inductive B where
  | t : B
  | f : B
noncomputable def B.isT (b : B) : Prop := B.rec (motive := fun _ => Prop) (Eq B.t B.t) False b
noncomputable def rel (_ _ : B) : Prop := Eq B.t B.t
"""
READ_BACK = "noncomputable def get (q : Quot rel) : B := Quot.rec (motive := fun _ => B) (fun a => a) q\n"
T_EQ_F = (
    "theorem t_eq_f : Eq B.t B.f :=\n"
    "  @Eq.rec (Quot rel) (Quot.mk rel B.t) (fun q _ => Eq B.t (get q)) (Eq.refl B.t) (Quot.mk rel B.f)\n"
    "    (Quot.sound (r := rel) (a := B.t) (b := B.f) (Eq.refl B.t))\n"
)
BOOM = "theorem boom : False :="
BOOM_PROOF = " @Eq.rec B B.t (fun b _ => B.isT b) (Eq.refl B.t) B.f t_eq_f\n"
SOUND = "theorem s (a b : B) (h : rel a b) : Eq (Quot.mk rel a) (Quot.mk rel b) :="


def test_an_allowed_axiom_from_another_module_is_an_impostor_even_with_the_real_type(
    lean_with_modules: LeanToolchain, options: VerifyOptions, tmp_path: Path
) -> None:
    # the module's `Quot.sound` has the real axiom's name and type, and passes the check of
    # its type; only its module tells it from Init's, beside which it would prove False
    header = "prelude\nimport FakeQuot\n" + QUOT_WORLD + READ_BACK + T_EQ_F
    bare_lean_accepts(lean_with_modules, tmp_path, header + BOOM + BOOM_PROOF)
    tasks = [
        VerifyTask(id="proof", header=header, formal_statement=BOOM, proof=BOOM_PROOF),
        VerifyTask(id="full_code", header=header, formal_statement=BOOM, full_code=header + BOOM + BOOM_PROOF),
        VerifyTask(id="whole file", full_code=header + BOOM + BOOM_PROOF),
        VerifyTask(
            id="sound", header="prelude\nimport FakeQuot\n" + QUOT_WORLD, formal_statement=SOUND, proof=" Quot.sound h"
        ),
    ]
    for verdict in verify_tasks(lean_with_modules, options, tasks):
        assert verdict.verdict == "rejected" and verdict.reasons == ["fake_axiom"], verdict
        assert "`Quot.sound` is declared in `FakeQuot`, not in Lean's own `Init`" in verdict.message, verdict
    # the same use of Init's `Quot.sound` (the kernel's quotient, which cannot be read back) is honest
    genuine = VerifyTask(
        id="genuine", header="prelude\nimport Init.Canon\n" + QUOT_WORLD, formal_statement=SOUND, proof=" Quot.sound h"
    )
    [verdict] = verify_tasks(lean_with_modules, options, [genuine])
    assert verdict.verified and verdict.axioms == ["Quot.sound"], verdict


def test_the_module_of_an_axiom_is_read_from_lean_s_references() -> None:
    def key(module: str, name: str) -> str:
        return json.dumps({"c": {"m": module, "n": name}}, separators=(",", ":"))

    data = {
        "references": {
            key("Init.Core", "propext"): {"definition": None, "usages": [[3, 0, 3, 7]]},
            key("Work", "Quot.sound"): {"definition": [1, 0, 1, 5], "usages": []},  # the file's own
            key("Init.Core", "Foo.propext"): {"definition": None, "usages": []},  # another name
        }
    }
    assert imported_from(data, CANONICAL_AXIOMS) == {"propext": frozenset({"Init.Core"})}
    # older Lean keys references by name alone: no module to read, so none is claimed
    assert imported_from({"references": {"c:propext": {"definition": None}}}, CANONICAL_AXIOMS) is None
    # no references at all: nothing traced to Init
    assert imported_from({"decls": {}}, CANONICAL_AXIOMS) == {}


def test_a_lean_without_private_names_still_refuses_a_private_impostor(
    lean: LeanToolchain, options: VerifyOptions
) -> None:
    # An older Lean has no `pp.privateNames` and prints a private `propext` as `propext`:
    # the file's own private declarations, by that name, are then never the real axiom.
    old = dataclasses.replace(lean, private_names=False)
    got = _verify(old, _trusting(options), _impostor_tasks())
    assert got["private_propext"].verdict == "rejected", got["private_propext"]
    assert got["private_propext"].reasons == ["header_axiom"], got["private_propext"]
    assert got["private_choice"].reasons == ["header_axiom"], got["private_choice"]
    genuine = _verify(old, _trusting(options), _genuine_tasks())
    assert all(v.verified for v in genuine.values()), genuine


def test_the_toolchain_probe_knows_which_options_lean_has(lean: LeanToolchain) -> None:
    assert lean.private_names  # Lean 4.35 has pp.privateNames
    assert knows_option(lean.lean, "pp.privateNames", None)
    assert not knows_option(lean.lean, "pp.noSuchOptionAnywhere", None)


# ---------------------------------------------------------------- the CLI and the HTTP APIs


# Through the front ends the compiled modules come from LEAN_PATH: `Quot.sound` used as it is,
# imported from a module other than Init (an impostor by its module) and from `Init.Canon`.
MODULE_IMPOSTOR = ("module_quot_sound", "prelude\nimport FakeQuot\n" + QUOT_WORLD, SOUND, " Quot.sound h")
MODULE_GENUINE = ("init_quot_sound", "prelude\nimport Init.Canon\n" + QUOT_WORLD, SOUND, " Quot.sound h")


def _rows() -> list[dict[str, str]]:
    rows = [{"id": i, "header": h, "formal_statement": s, "proof": p} for i, h, s, p in IMPOSTORS]
    rows += [{"id": i, "header": h, "formal_statement": s, "proof": p} for i, h, s, p, _ in GENUINE]
    return rows + [
        {"id": i, "header": h, "formal_statement": s, "proof": p} for i, h, s, p in (MODULE_IMPOSTOR, MODULE_GENUINE)
    ]


def _module_env(toolchain: LeanToolchain) -> dict[str, str]:
    return {"LEAN_PATH": ":".join(toolchain.lean_path)}


def _assert_module_impostor(row: dict[str, Any]) -> None:
    assert row["verdict"] == "rejected" and row["reasons"] == ["fake_axiom"], row
    assert "`Quot.sound` is declared in `FakeQuot`, not in Lean's own `Init`" in row["message"], row


def _judged(rows: list[dict[str, Any]]) -> None:
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {r["id"] for r in _rows()}
    for ident, *_ in IMPOSTORS:
        _assert_impostor(by_id[ident], ident)
    _assert_module_impostor(by_id[MODULE_IMPOSTOR[0]])
    for ident in [g[0] for g in GENUINE] + [MODULE_GENUINE[0]]:
        assert by_id[ident]["verdict"] == "verified", by_id[ident]


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_the_cli_judges_by_identity(lean_with_modules: LeanToolchain, tmp_path: Path, pool: str) -> None:
    tasks = tmp_path / "identity.jsonl"
    tasks.write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    trust = [word for name in TRUST for word in ("--allow-axiom", name)]
    proc = subprocess.run(
        [sys.executable, "-m", "mathagent", "verify", "-i", str(tasks), "--json", "--no-cache", "--pool", pool]
        + ["--lean", str(lean_with_modules.lean), *trust],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, **_module_env(lean_with_modules)},
    )
    assert proc.returncode == 1, proc.stderr  # some rejected
    _judged([json.loads(line) for line in proc.stdout.splitlines() if line.strip()])


@pytest.mark.slow
def test_both_http_apis_judge_by_identity(lean_with_modules: LeanToolchain, tmp_path: Path) -> None:
    rows = _rows()
    # kimina snippets are whole files: `--tasks` binds each snippet id to its statement and header
    statements = tmp_path / "statements.jsonl"
    statements.write_text(
        "".join(json.dumps({k: r[k] for k in ("id", "header", "formal_statement")}) + "\n" for r in rows),
        encoding="utf-8",
    )
    snippets = [{"id": r["id"], "code": r["header"] + r["formal_statement"] + r["proof"] + "\n"} for r in rows]
    home = tmp_path / "home"
    (home / "mathagent").mkdir(parents=True)
    (home / "mathagent" / "mathagent.toml").write_text(f"[verify]\nallow_axioms = {json.dumps(list(TRUST))}\n")
    env = {"XDG_CONFIG_HOME": str(home), **_module_env(lean_with_modules)}
    serve_args = ("--workers", "2", "--no-cache", "--tasks", str(statements))
    with serving(lean_with_modules, tmp_path, *serve_args, env=env) as server:
        native = httpx.post(server.url + "/v1/verify", json={"tasks": rows}, timeout=300)
        kimina = httpx.post(server.url + "/api/check", json={"snippets": snippets, "timeout": 60}, timeout=300)
    assert native.status_code == 200, native.text
    _judged(native.json()["results"])
    assert kimina.status_code == 200, kimina.text
    results = {r["id"]: r for r in kimina.json()["results"]}
    for ident, *_ in IMPOSTORS:
        _assert_impostor(results[ident]["mathagent"], ident)
        assert not _kimina_valid(results[ident]), results[ident]
    _assert_module_impostor(results[MODULE_IMPOSTOR[0]]["mathagent"])
    assert not _kimina_valid(results[MODULE_IMPOSTOR[0]]), results[MODULE_IMPOSTOR[0]]
    for ident in [g[0] for g in GENUINE] + [MODULE_GENUINE[0]]:
        assert results[ident]["mathagent"]["verdict"] == "verified", results[ident]
        assert _kimina_valid(results[ident]), results[ident]


def _kimina_valid(result: dict[str, Any]) -> bool:
    """What kimina-client's `is_valid` decides: no server error, no error message, no sorry."""
    response = result.get("response")
    if result.get("error") or response is None:
        return False
    return not any(m["severity"] == "error" for m in response["messages"]) and not response.get("sorries")
