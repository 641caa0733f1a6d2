"""nrg.tasks: embedded datasets, loaders and schema mapping, prompts, exact lengths, metrics."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from nrg.errors import ParameterError
from nrg.models import known_models
from nrg.models.registry import package_folder
from nrg.tasks import (
    TASKS,
    TaskItem,
    exact_match,
    fit_to_tokens,
    get_task,
    gsm8k_final_answer,
    last_number,
    normalize_answer,
    numeric_match,
    rouge_scores,
    squad_scores,
    token_f1,
)


@pytest.fixture(scope="module")
def bert_tokenizer():
    from transformers import AutoTokenizer
    folder = package_folder(known_models()["minilm-l6"])
    return AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def chat_tokenizer(bert_tokenizer):
    """A tokenizer with a (minimal) chat template, like an instruction model's."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(bert_tokenizer.name_or_path)
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant> {% endif %}")
    return tok


# ---- embedded datasets -----------------------------------------------------------------

def test_embedded_qa_answers_are_spans_of_their_context() -> None:
    items = get_task("qa").all_items()
    assert len(items) >= 50 and len({it.id for it in items}) == len(items)
    for it in items:
        assert it.prompt.endswith("?") and it.references
        for answer in it.references:
            assert answer in (it.context or ""), (it.id, answer)


def test_embedded_summaries() -> None:
    items = get_task("summarization").all_items()
    assert len(items) >= 50 and len({it.id for it in items}) == len(items)
    for it in items:
        assert it.context and isinstance(it.reference, str)
        assert 0 < len(it.reference.split()) < len(it.context.split())


def test_gsm8k_items_have_numeric_answers() -> None:
    items = get_task("generation", "gsm8k").all_items()
    assert len(items) == 1319
    assert items[0].reference == "18" and "Janet" in items[0].prompt
    assert all(last_number(it.reference) == it.reference for it in items)


def test_items_are_seeded_and_bounded() -> None:
    task = get_task("qa")
    assert task.items(5, seed=1) == task.items(5, seed=1)
    assert task.items(5, seed=1) != task.items(5, seed=2)
    with pytest.raises(ParameterError, match="n="):
        task.items(10_000)


# ---- errors -----------------------------------------------------------------------------

def test_unknown_task_and_dataset_list_valid_choices() -> None:
    with pytest.raises(ParameterError) as info:
        get_task("translation")
    assert all(t in str(info.value) for t in TASKS)
    with pytest.raises(ParameterError) as info:
        get_task("summarization", "arxiv")
    assert "cnn_dailymail" in str(info.value) and "xsum" in str(info.value)


def test_file_with_missing_fields_names_them_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps({"context": "c", "query": "q"}) + "\n")
    with pytest.raises(ParameterError) as info:
        get_task("qa", str(path)).items()
    assert "question" in str(info.value) and "answers" in str(info.value) and str(path) in str(info.value)


# ---- loaders: public schemas from local files --------------------------------------------

def test_squad_schema_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "squad.jsonl"
    rows = [{"id": "q1", "title": "t", "context": "OSPF uses area 0 as backbone.",
             "question": "Which area is the backbone?",
             "answers": {"text": ["area 0", "0"], "answer_start": [11, 16]}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    [item] = get_task("qa", str(path)).items()
    assert item == TaskItem("q1", "Which area is the backbone?", ["area 0", "0"],
                            "OSPF uses area 0 as backbone.")


def test_official_nested_squad_json(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    data = {"version": "1.1", "data": [{"title": "x", "paragraphs": [{"context": "BGP uses port 179.", "qas": [
        {"id": "a", "question": "Port?", "answers": [{"text": "179", "answer_start": 14}]}]}]}]}
    path.write_text(json.dumps(data))
    [item] = get_task("qa", str(path)).items()
    assert item.references == ["179"] and item.context == "BGP uses port 179."


def test_cnn_dailymail_schema_csv(tmp_path: Path) -> None:
    path = tmp_path / "cnn.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "article", "highlights"])
        writer.writeheader()
        writer.writerow({"id": "c1", "article": "A long article.", "highlights": "Short."})
    [item] = get_task("summarization", str(path)).items()
    assert (item.id, item.context, item.reference) == ("c1", "A long article.", "Short.")


def test_xsum_schema_json(tmp_path: Path) -> None:
    path = tmp_path / "xsum.json"
    path.write_text(json.dumps([{"id": "x1", "document": "Doc text.", "summary": "Sum."}]))
    [item] = get_task("summarization", str(path)).items()
    assert (item.context, item.reference) == ("Doc text.", "Sum.")


def test_gsm8k_schema_local_file(tmp_path: Path) -> None:
    path = tmp_path / "gsm.jsonl"
    path.write_text(json.dumps({"question": "2+2?", "answer": "2+2=4\n#### 4"}) + "\n")
    [item] = get_task("generation", str(path)).items()
    assert item.reference == "4"


# ---- metrics ----------------------------------------------------------------------------

def test_squad_normalisation_and_scores() -> None:
    assert normalize_answer("The  Border-Gateway, Protocol!") == "bordergateway protocol"
    assert exact_match("the X2 interface.", "X2 interface") == 1.0
    assert token_f1("cat sat", "the cat sat down") == pytest.approx(0.8)
    assert token_f1("dog", "cat") == 0.0
    assert squad_scores("X2", ["the X2 interface", "X2"]) == {"exact_match": 1.0, "f1": 1.0}


def test_rouge_identical_is_one_and_disjoint_is_zero() -> None:
    same = rouge_scores("the fibre was cut by a contractor", "the fibre was cut by a contractor")
    assert same == {"rouge_1": 1.0, "rouge_2": 1.0, "rouge_l": 1.0}
    assert rouge_scores("alpha beta", "gamma delta")["rouge_1"] == 0.0


def test_gsm8k_answer_extraction() -> None:
    assert gsm8k_final_answer("Janet sells 9 eggs.\n#### 1,018") == "1018"
    assert last_number("so the total is $1,234.") == "1234"
    assert numeric_match("18 + 2 = 20, so the answer is 20.", "20") == 1.0
    assert numeric_match("the answer is 21", "20") == 0.0
    assert numeric_match("no number here", "3") == 0.0
    assert numeric_match("it is -3.50", "-3.5") == 1.0


def test_task_scores() -> None:
    qa = get_task("qa")
    items = qa.items(2, seed=0)
    perfect = qa.score([it.references[0] + "\nmore text" for it in items], items)
    assert perfect == {"exact_match": 1.0, "f1": 1.0}
    assert qa.score(["zzz", items[1].references[0]], items)["exact_match"] == 0.5
    gen = get_task("generation")
    g = gen.items(2)
    assert gen.score([f"... #### {g[0].reference}", "I do not know"], g) == {"exact_match": 0.5}
    summ = get_task("summarization")
    s = summ.items(1)
    assert summ.score([s[0].references[0]], s)["rouge_l"] == 1.0
    with pytest.raises(ParameterError, match="predictions"):
        summ.score([], s)


# ---- prompts and exact lengths ------------------------------------------------------------

def test_render_uses_chat_template_when_present(bert_tokenizer, chat_tokenizer) -> None:
    task = get_task("qa")
    item = task.items(1)[0]
    chat = task.render(item, chat_tokenizer)
    assert chat.startswith("<user> ") and chat.endswith("<assistant> ")
    assert item.context in chat and item.prompt in chat
    plain = task.render(item, bert_tokenizer)
    assert plain.endswith("Answer:") and item.context in plain
    assert task.render(item, None) == plain


def test_t5_prompts_use_task_prefixes() -> None:
    from transformers import ByT5Tokenizer
    tok = ByT5Tokenizer()
    item = get_task("summarization").items(1)[0]
    assert get_task("summarization").render(item, tok).startswith("summarize: ")
    qa_item = get_task("qa").items(1)[0]
    assert get_task("qa").render(qa_item, tok).startswith(f"question: {qa_item.prompt} context: ")


def test_fit_to_tokens() -> None:
    assert fit_to_tokens([1, 2, 3, 4], 2) == [1, 2]
    assert fit_to_tokens([1, 2, 3], 7) == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ParameterError):
        fit_to_tokens([], 3)
    with pytest.raises(ParameterError):
        fit_to_tokens([1], 0)


@pytest.mark.parametrize("task_name", TASKS)
@pytest.mark.parametrize("n_tokens", [64, 200, 1000])
def test_prompt_ids_have_exact_length(task_name: str, n_tokens: int, bert_tokenizer, chat_tokenizer
                                      ) -> None:
    task = get_task(task_name)
    item = task.items(1, seed=4)[0]
    ids = task.prompt_ids(item, bert_tokenizer, n_tokens)
    assert len(ids) == n_tokens
    assert ids[0] == bert_tokenizer.cls_token_id and ids[-1] == bert_tokenizer.sep_token_id
    chat_ids = task.prompt_ids(item, chat_tokenizer, n_tokens)
    assert len(chat_ids) == n_tokens
    assert chat_tokenizer.decode(chat_ids).endswith("< assistant >")


def test_prompt_ids_too_short_for_template(bert_tokenizer) -> None:
    task = get_task("qa")
    with pytest.raises(ParameterError, match="minimum"):
        task.prompt_ids(task.items(1)[0], bert_tokenizer, 5)
