"""Guards of the semantic cache: false friends never share an answer, whatever the cosine."""

from __future__ import annotations

import pytest

from pandas_llm_annotate.semantic.guards import compatible, conflict, signature

SAME = [
    ("I want to cancel my card", "i want to cancel my card!"),
    ("I want to cancel my card", "Please cancel my card"),
    ("I don't want this card", "I do not want this card"),
    ("I can't log in", "I cannot log in"),
    ("I paid 1,000 dollars", "I paid $1000"),
    ("I have two cards", "I have 2 cards"),
    ("I paid $20.00", "I paid $20"),
    ("Which ATM can I use?", "which atm can i use"),
    ("May I top up by bank transfer?", "Can I top up by bank transfer?"),
    ("HOW DO I TOP UP", "how do i top up?"),
    ("我的卡丢了", "我的卡丢了！"),
    ("Can I use my card in Spain?", "can I use my card in spain"),
    ("How do I top up?", "How can I top up?"),
    ("Hi, my card was declined. Thanks!", "my card was declined"),
    ("Why is my card not recognized?", "Why is my card not reocgnized?"),
    ("I lost my cards", "I lost my card"),
    ("I'm having trouble with the app", "im having trouble with the app"),
    ("这部电影好看", "这部电影很好看"),
]

DIFFERENT = [
    ("the movie was good", "the movie was not good", "negation"),
    ("I received my card", "I never received my card", "negation"),
    ("I want this card", "I dont want this card", "negation"),
    ("The payment went through", "The payment didn't go through", "negation"),
    ("There is a fee", "There is no fee", "negation"),
    ("这部电影好看", "这部电影不好看", "negation"),
    ("我收到卡了", "我没收到卡", "negation"),
    ("你要取消", "你别取消", "negation"),
    ("I paid $20 for it", "I paid $50 for it", "number"),
    ("I was charged twice", "I was charged three times", "number"),
    ("transfer 1,000", "transfer 10,000", "number"),
    ("my card ending 4242", "my card ending 4343", "number"),
    ("It arrived on 2024-01-05", "It arrived on 2024-01-06", "number"),
    ("我付了三百元", "我付了五百元", "number"),
    ("I paid 20 dollars", "I paid 20 euros", "amount"),
    ("The fee is 2%", "The fee is 2 pounds", "amount"),
    ("I sent it on Monday", "I sent it on Tuesday", "date"),
    ("I paid yesterday", "I paid today", "date"),
    ("It takes 3 days", "It takes 3 weeks", "date"),
    ("Delivered on 5 May", "Delivered on 5 June", "date"),
    ("my last transfer", "my next transfer", "date"),
    ("today's exchange rate", "tomorrow's exchange rate", "date"),
    ("我今天付了钱", "我明天付钱", "date"),
    ("Can I use my card in Spain?", "Can I use my card in France?", "entity"),
    ("Send money to John please", "Send money to Mary please", "entity"),
    ("I want a Visa card", "I want a Mastercard card", "entity"),
    ("Does it work with Apple Pay?", "Does it work with Google Pay?", "entity"),
    ("does it work with apple pay", "does it work with google pay", "substitution"),
    ("Tell me more about the fee", "Tell me less about the fee", "quantifier"),
    ("Tell me about the deposit", "Tell me about the withdrawal", "substitution"),
    ("I sent money to the wrong account", "I received money to the wrong account",
     "substitution"),
    ("How do I activate my card?", "How do I deactivate my card?", "substitution"),
    ("Why was my payment accepted?", "Why was my payment declined?", "substitution"),
    ("房间很干净", "房间很脏", "substitution"),
    ("Why didn't the ATM give me my money", "Why didn't the ATM give me all my money",
     "quantifier"),
    ("I want a card", "I want another card", "quantifier"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_equivalent_texts_pass(a: str, b: str) -> None:
    assert conflict(a, b) is None
    assert compatible(b, a)


@pytest.mark.parametrize(("a", "b", "why"), DIFFERENT)
def test_false_friends_are_stopped(a: str, b: str, why: str) -> None:
    assert conflict(a, b) == why
    assert not compatible(b, a)


def test_signature_is_symmetric_and_memoised() -> None:
    assert signature("I paid $20") is signature("I paid $20")
    for a, b, _ in DIFFERENT:
        assert (conflict(a, b) is None) == (conflict(b, a) is None)


def test_lexical_guards_can_be_left_out_for_measurements() -> None:
    assert conflict("I sent money", "I received money", lexical=False) is None
    assert conflict("I sent money", "I received money") == "substitution"
