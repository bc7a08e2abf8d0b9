"""A corpus for differential accuracy tests: news-like predictions and references full of what moves
detokenization and sentence splits (abbreviations, decimals, straight and curly quotes, guillemets,
ellipses, brackets, lists, newlines, non-ASCII, control characters, space before punctuation, empty
outputs, trailing EOS, cut UTF-8), a Llama-3-like byte-level BPE tokenizer built offline (clean-up ON
and OFF copies), and a real mlperf_log_accuracy.json + cnn_eval.json pair.
"""
from __future__ import annotations

import json
import pathlib
import random

import numpy as np

BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
SPECIALS = [BOS, EOS, EOT, "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_0|>"]
# Llama-3's pre-tokenizer split pattern (tokenizer.json of Llama-3.1-8B-Instruct)
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

NAMES = ["Mr. Smith", "Mrs. Jones", "Dr. Alvarez", "Gen. Lee", "Sen. Warren", "Gov. Hale", "Prof. Okafor",
         "Rep. O'Neill", "Lt. Col. Brandt", "St. John", "J.P. Morgan", "Müller", "Zoë Saldaña", "François",
         "Łukasz Nowak", "José Núñez", "Søren Kierkegaard", "Ngũgĩ", "Björk", "Renée"]
PLACES = ["the U.S.", "the U.K.", "Washington, D.C.", "St. Louis", "Mt. Vernon", "Ft. Worth", "the E.U.",
          "São Paulo", "Zürich", "Kraków", "Düsseldorf", "Montréal", "the U.N."]
DATES = ["Jan. 3", "Feb. 14", "Sept. 2025", "Oct. 12", "Dec. 31", "Aug. 1", "Nov. 5"]
TIMES = ["5 p.m.", "9:30 a.m.", "noon", "6 p.m. ET", "11 a.m."]
NUMBERS = ["2.5 percent", "$3.4 billion", "1,200", "No. 1", "3.14", "0.5%", "45.6 million", "1.5m", "£2.3bn",
           "€40", "10²", "7 1/2", "-3.2 degrees"]
VERBS = ["said", "announced", "warned", "confirmed", "denied", "argued", "reported", "claimed"]
OBJECTS = ["the new policy", "the budget", "a ceasefire", "the merger", "rising prices", "the verdict",
           "the storm damage", "a vaccine trial", "the election results", "the strike"]

SENTENCE_TEMPLATES = [
    "{name} {verb} {obj} on {date}.",
    "{name} met officials in {place} at {time}.",
    "The economy of {place} grew {num} last year.",
    "\"We are pleased,\" {verb} {name}.",
    "“We are pleased,” {verb} {name}.",
    "{name} {verb}: “This is a turning point.” Others disagreed.",
    "{name} called it “a disaster.” The council voted anyway.",
    "Officials said “no.” Then {name} left {place}.",
    "‘It’s over,’ {name} {verb}. ‘We lost.’",
    "He wrote «c’est fini.» Then he resigned.",
    "Le maire a dit «Non.» {name} a répondu.",
    "\"Nobody expected this.\" {name} {verb} {obj}.",
    "'That's not true.' {name} said so at {time}.",
    "{name} ({place}) {verb} {obj}.",
    "The report [released {date}] {verb} {obj}.",
    "(The vote was close.) {name} {verb} {obj}.",
    "{name} said... the talks failed. Then came {obj}.",
    "Prices fell… then rose again by {num}.",
    "Wait . . . what happened to {obj}?",
    "Was it {obj}? {name} did not say!",
    "Incredible!!! {name} won in {place}.",
    "{name} paid {num} for {obj} — a record.",
    "{name} won -- again -- in {place}.",
    "1. {name} {verb} {obj}.\n2. {place} responded.\n3. Markets rose {num}.",
    "- {name} {verb} {obj}\n- Prices rose {num}\n- Talks resume {date}.",
    "* {obj} in {place}.\n* {name} {verb} nothing.",
    "{name} {verb} {obj} .",
    "{name} {verb} it , but {place} disagreed .",
    "{name} does n't agree ; he 's sure they 're wrong and we 've seen it .",
    "I 'm sure it 's {obj} , {name} said .",
    "Is it true ? Yes ! It ' s {obj} .",
    "The firm's C.E.O. {verb} {obj} at 5 p.m. Shares rose.",
    "The U.S. {verb} {obj}. U.K. officials disagreed.",
    "Acme Corp. rose {num} on {date}. Analysts expect more.",
    "{name} moved to {place} in the 1990s. i.e. before the boom.",
    "Temperatures hit 40°C in {place}. Residents fled.",
    "Tickets cost {num}. {name} bought 2.",
    "The café reopened. Its owner, {name}, {verb} {obj}.",
    "Cafe\u0301 owners {verb} {obj}. Business is slow.",
    "{name} {verb} {obj}.\x1fNext item: {place}.",
    "{name} {verb} {obj}.\u00a0The end.",
    "Unit 10² failed. {name} {verb} {obj}.",
    "{name} {verb}, \u201cNo.\u201d \u201cWhy?\u201d asked {place}.",
    "(See {date}.) {name} {verb} {obj}.",
    "“Enough.” “Really?” “Yes.” {name} {verb}.",
    "The {obj} was [sic] approved.  Two spaces follow.  {name} {verb}.",
    "Tel.: 555-0100. E-mail: info@example.com. {name} {verb}.",
    "{name} {verb} {obj}...",
    "{place}: {name} {verb} {obj}",
    "emoji 🎉 celebrations in {place}. {name} smiled 😊.",
    "日本の首相は{date}に発表した。{name} {verb}.",
    "Москва заявила о {num}. {name} {verb}.",
]


def _sentence(rng: random.Random) -> str:
    return rng.choice(SENTENCE_TEMPLATES).format(
        name=rng.choice(NAMES), place=rng.choice(PLACES), date=rng.choice(DATES), time=rng.choice(TIMES),
        num=rng.choice(NUMBERS), verb=rng.choice(VERBS), obj=rng.choice(OBJECTS))


def text(rng: random.Random, sentences: int) -> str:
    sep = rng.choice([" ", " ", " ", "\n", "  ", " \n"])
    out = sep.join(_sentence(rng) for _ in range(sentences))
    if rng.random() < 0.1:
        out = "  " + out + " \n"
    return out


def training_text() -> list[str]:
    rng = random.Random(7)
    return [text(rng, 4) for _ in range(3000)] + SENTENCE_TEMPLATES


def build_tokenizers(out: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Two copies of one Llama-3-like byte-level BPE tokenizer: clean-up ON (as Llama-3.1-8B-Instruct's
    tokenizer_config.json says) and OFF. Written with the tokenizers library, not transformers' save."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(training_text(), trainer=trainer)
    bos = raw.token_to_id(BOS)
    raw.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, bos)])
    dirs = []
    for cleanup in (True, False):
        d = out / f"tokenizer-cleanup-{'on' if cleanup else 'off'}"
        d.mkdir(parents=True, exist_ok=True)
        raw.save(str(d / "tokenizer.json"))
        added = {str(raw.token_to_id(t)): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                           "single_word": False, "special": True} for t in SPECIALS}
        (d / "tokenizer_config.json").write_text(json.dumps({
            "added_tokens_decoder": added, "bos_token": BOS, "eos_token": EOT,
            "clean_up_tokenization_spaces": cleanup, "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
        (d / "special_tokens_map.json").write_text(json.dumps({"bos_token": BOS, "eos_token": EOT}))
        dirs.append(d)
    return dirs[0], dirs[1]


def build_case(out: pathlib.Path, tokenizer_dir: pathlib.Path, samples: int, seed: int = 0,
               predictions: list[str] | None = None, references: list[str] | None = None) -> tuple[pathlib.Path, pathlib.Path]:
    """cnn_eval.json + mlperf_log_accuracy.json (int32, shuffled log order, some duplicates)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    eos, eot, bos = tok.token_to_id(EOS), tok.token_to_id(EOT), tok.token_to_id(BOS)
    rng = random.Random(seed)
    if references is None:
        references = [text(rng, rng.randint(2, 4)) for _ in range(samples)]
    if predictions is None:
        predictions = [text(rng, rng.randint(1, 6)) for _ in range(samples)]
    records, ids_of = [], []
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        records.append({"instruction": {"llama": "Summarize: {input}"}, "input": reference,
                        "tok_input": [bos, 100 + i % 50], "output": reference})
        ids = tok.encode(prediction, add_special_tokens=False).ids
        roll = rng.random()
        if roll < 0.03:
            ids = []                                   # an empty output
        elif roll < 0.08:
            ids = [eot]                                # a lone EOS
        elif roll < 0.5:
            ids = ids[:128] + [rng.choice([eos, eot])]  # trailing EOS
        elif roll < 0.6:
            ids = [bos] + ids[:60]                     # a special token first; cut (maybe inside UTF-8)
        else:
            ids = ids[:128]
        ids_of.append(ids)
    order = list(range(len(records)))
    rng.shuffle(order)
    entries = []
    for seq, i in enumerate(order):
        entries.append(_entry(seq, i, ids_of[i]))
        if rng.random() < 0.02:  # a duplicate with other data: the first logged wins
            entries.append(_entry(10 ** 6 + seq, i, ids_of[(i + 1) % len(ids_of)]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "cnn_eval.json").write_text(json.dumps(records, ensure_ascii=False))
    (out / "mlperf_log_accuracy.json").write_text(json.dumps(entries, indent=0))
    return out / "mlperf_log_accuracy.json", out / "cnn_eval.json"


def _entry(seq: int, index: int, ids: list[int]) -> dict:
    return {"seq_id": seq, "qsl_idx": index, "data": np.asarray(ids, "<i4").tobytes().hex().upper(),
            "token_count": len(ids)}


# Three samples whose references and predictions put sentence ends right before curly quotes and
# guillemets: nltk >= 3.10 splits there, nltk 3.8.1 does not, and ROUGE-Lsum sees the difference.
CURLY_REFERENCES = [
    "The minister said “we will not resign.” The opposition called it “a disgrace.” Talks resume Monday.",
    "“It is over.” “We lost.” Fans left the stadium in silence.",
    "Le président a dit «Non.» «Jamais.» Les syndicats ont répondu.",
]
CURLY_PREDICTIONS = [
    "The opposition called it “a disgrace.” The minister said “we will not resign.” Talks resume Monday.",
    "Fans left the stadium in silence. “We lost.” “It is over.”",
    "Les syndicats ont répondu. Le président a dit «Non.» «Jamais.»",
]
