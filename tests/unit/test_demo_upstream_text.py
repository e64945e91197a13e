"""The embedded demo model's answers (pure text functions)."""

from __future__ import annotations

from tornado_sse.demo_upstream import compose_answer, tokenize


def test_restates_question_in_its_language() -> None:
    assert compose_answer("你好").startswith("你问的是：“你好”。")
    assert compose_answer("What is SSE?").startswith('You asked: "What is SSE?". ')


def test_long_question_is_shortened_in_the_restatement() -> None:
    assert '..."' in compose_answer("word " * 50)


def test_tokens_rebuild_the_answer_exactly() -> None:
    for q in ("你好，介绍一下你自己", "Tell me about streaming", "emoji 😊 mix 中文"):
        answer = compose_answer(q)
        pieces = list(tokenize(answer))
        assert "".join(pieces) == answer
        assert len(pieces) > 20
