"""What differs between model families: chat format and stop tokens.

The tokenizer's own chat template is used where there is one; these formats
are the fallback (and the reference the tests check the templates against).
"""

from __future__ import annotations

from dataclasses import dataclass

from mathagent.engines.base import Chat

INTERNLM2_MATH_MODELS = {
    "internlm2-math-plus-7b": "internlm/internlm2-math-plus-7b",
    "internlm2-math-plus-1_8b": "internlm/internlm2-math-plus-1_8b",
    "internlm2-math-plus-20b": "internlm/internlm2-math-plus-20b",
    "internlm2-math-7b": "internlm/internlm2-math-7b",
    "internlm2-math-20b": "internlm/internlm2-math-20b",
}
DEFAULT_MODEL = "internlm/internlm2-math-plus-7b"


@dataclass(frozen=True)
class Family:
    name: str
    stop: tuple[str, ...]
    stop_token_ids: tuple[int, ...]
    system_prompt: bool  # does the model expect/allow a system message?

    def format(self, chat: Chat) -> str:
        """The prompt text in ChatML style (InternLM2 / SmolLM2 both use it)."""
        bos = "<s>" if self.name == "internlm2" else ""
        turns = [m for m in chat if self.system_prompt or m.role != "system"]
        body = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in turns)
        return f"{bos}{body}<|im_start|>assistant\n"


# InternLM2: no system prompt; stop on <|im_end|> (92542) and </s> (2).
INTERNLM2 = Family("internlm2", stop=("<|im_end|>", "</s>"), stop_token_ids=(92542, 2), system_prompt=False)
CHATML = Family("chatml", stop=("<|im_end|>",), stop_token_ids=(), system_prompt=True)


def resolve_model(name: str) -> str:
    """Short InternLM2-Math names to their hub ids; anything else as given."""
    return INTERNLM2_MATH_MODELS.get(name.lower().removeprefix("internlm/"), name)


def family_of(model: str) -> Family:
    return INTERNLM2 if "internlm" in model.lower() else CHATML
