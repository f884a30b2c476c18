"""modprobe.analysis.sabotage.replies: the self-assessment prompt's replies, read or reported."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from modprobe.analysis.sabotage.replies import SELF_ASSESSMENT_PROMPT, parse_reply


@pytest.mark.parametrize(("reply", "labels", "confidence"), [
    ("labels: joy, surprise, neutral\nconfidence: 85", ["joy", "surprise", "neutral"], 85.0),
    ("Sure!\nLabels: Joy.\nConfidence: 85%\nThanks.", ["Joy"], 85.0),
    ("labels: anger\nconfidence = 70/100", ["anger"], 70.0),
    ("labels: anger, fear\nconfidence: 0.7", ["anger", "fear"], 0.7),
])
def test_readable_replies(reply: str, labels: list[str], confidence: float) -> None:
    parsed = parse_reply(reply)
    assert parsed.problem == ""
    assert parsed.labels == labels and parsed.confidence == confidence


@pytest.mark.parametrize(("reply", "problem"), [
    ("I think it is joy, fairly sure.", "no 'labels: a, b, ...' line; no 'confidence"),
    ("labels: joy", "no 'confidence: <number>' line"),
    ("labels: joy\nconfidence: high", "no 'confidence: <number>' line"),
    ("labels: joy\nconfidence: 80\nconfidence: 60", "2 different confidences"),
    ("", "empty reply"),
    (None, "empty reply"),
])
def test_unreadable_replies_say_why(reply: object, problem: str) -> None:
    parsed = parse_reply(reply)
    assert parsed.labels is None and parsed.confidence is None
    assert parsed.problem.startswith(problem)


def test_prompt_names_both_lines() -> None:
    text = SELF_ASSESSMENT_PROMPT.format(question="What emotion?", labels="joy, anger")
    assert "labels:" in text and "confidence:" in text and "1 to 100" in text


def test_unreadable_replies_are_reported_and_left_out(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.sabotage import main

    lines = [
        {"item": "a", "agent": "audio", "response": "labels: anger, joy\nconfidence: 90",
         "gold": "joy"},
        {"item": "a", "agent": "text", "labels": ["joy"], "confidence": 60, "gold": "joy"},
        {"item": "b", "agent": "audio", "response": "It sounds angry to me.", "gold": "joy"},
        {"item": "b", "agent": "text", "labels": ["joy"], "confidence": 70, "gold": "joy"},
    ]
    path = tmp_path / "agents.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert main([str(path), "--out", str(tmp_path / "out"), "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "1 self-assessment replies could not be read (first: line 3" in printed
    unparsed = pd.read_csv(tmp_path / "out" / "unparsed.csv")
    assert unparsed[["line", "item", "agent"]].values.tolist() == [[3, "b", "audio"]]
    per = pd.read_csv(tmp_path / "out" / "per_agent.csv")
    # the readable reply counts (audio: anger at 0.90, a potential sabotage); the
    # unreadable one is absent, not guessed
    audio = per[per["agent"] == "audio"]
    assert audio["item"].tolist() == ["a"] and audio["potential_sabotage"].tolist() == [1.0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["unparsed_replies"] == 1
    assert summary["agents"]["audio"]["potential_sabotage"]["n"] == 1
