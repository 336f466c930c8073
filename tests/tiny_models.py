"""Tiny randomly initialised transformer models of every supported family, built offline for the tests.

`build_tiny_model(family, root)` writes a complete model folder (config.json, model.safetensors and
tokenizer files) to ``root / family`` in well under a second, with no network: the tokenizers are trained
here on a small built-in English corpus, and the weights come from a seeded random init, so two builds
of one family give the same files.

Every folder loads like a hub checkpoint:

- ``AutoConfig.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)`` for every family;
- ``AutoModel.from_pretrained(path, attn_implementation="eager")`` for every family except ``bert2bert``;
- ``bert2bert`` is an ``EncoderDecoderModel`` (two tiny BERTs; ``AutoModel`` has no mapping for it):
  load it with ``EncoderDecoderModel.from_pretrained(path, attn_implementation="eager")``
  (``AutoModelForSeq2SeqLM`` works too). Its config has ``decoder_start_token_id`` and ``pad_token_id``,
  so a forward pass with ``decoder_input_ids`` works.

Each checkpoint is the class AutoModel builds (BertModel, GPT2Model, LlamaModel, T5Model, BartModel, ...;
bert2bert: an EncoderDecoderModel with a BertLMHeadModel decoder), so it loads with no missing or
unexpected weights, hence no unseeded random ones. The GPT-2, Llama, T5 and BART checkpoints also load
cleanly into their causal-LM / seq2seq-LM classes, whose output heads are tied to the embeddings.

Tokenizers, by family:

- WordPiece (bert, distilbert, electra, bert2bert): uncased (accents stripped, as in bert-base-uncased),
  a few hundred entries: every ASCII character alone and as a ``##`` continuation, common suffixes and the
  corpus words, so any ASCII text tokenizes; other characters (CJK, emoji) become ``[UNK]``.
  bert/electra/bert2bert give ``token_type_ids``; distilbert does not.
- Byte-level BPE (gpt2, roberta, bart, llama): any text tokenizes without an unknown token.
  roberta/bart: ``<s> A </s>`` and ``<s> A </s></s> B </s>``; gpt2: ``<|endoftext|>`` only, nothing added;
  llama: ``<s>`` added at the start (byte-level, as Llama 3 and SmolLM2 tokenizers are; no pad token).
- SentencePiece unigram (t5, marian), one model trained here: ``</s>`` appended; ``<pad>`` is the decoder
  start token. ASCII and common Latin accents are in the vocabulary; any other character (CJK, emoji)
  becomes ``<unk>``, as in real T5 and Marian models: neither has byte fallback.
  Marian's tokenizer is the slow sentencepiece one (no ``sequence_ids()``); it warns that sacremoses is
  not installed, which is harmless.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

FAMILIES: tuple[str, ...] = (
    "bert",
    "roberta",
    "distilbert",
    "electra",
    "gpt2",
    "llama",
    "t5",
    "bart",
    "marian",
    "bert2bert",
)

# What each family's forward pass returns: "encoder" (self-attention only), "decoder" (causal
# self-attention only) or "encoder-decoder" (encoder, decoder and cross attention).
FAMILY_KIND: dict[str, str] = {
    "bert": "encoder",
    "roberta": "encoder",
    "distilbert": "encoder",
    "electra": "encoder",
    "gpt2": "decoder",
    "llama": "decoder",
    "t5": "encoder-decoder",
    "bart": "encoder-decoder",
    "marian": "encoder-decoder",
    "bert2bert": "encoder-decoder",
}

BYTE_LEVEL_FAMILIES: tuple[str, ...] = ("roberta", "gpt2", "llama", "bart")

# Vision encoders (option image, attndocs/vision.py): kept out of FAMILIES, whose tests read text.
# A 32 px image in 8 px patches (a 4 x 4 grid), 2 layers, 2 heads; each folder holds the model and a
# saved ViTImageProcessor (preprocessor_config.json) where the text families hold a tokenizer.
VISION_FAMILIES: tuple[str, ...] = ("vit", "deit")
VISION_IMAGE_SIZE = 32
VISION_PATCH_SIZE = 8
VISION_HEADS = 2

# One shape for every family, so tests can assert it: small, but more than one of everything that
# a view or an adapter iterates over, and a head size large enough for real dot products.
NUM_LAYERS = 2
NUM_HEADS = 4
HIDDEN_SIZE = 32
HEAD_DIM = HIDDEN_SIZE // NUM_HEADS
FFN_SIZE = 64
MAX_POSITIONS = 128
LLAMA_KV_HEADS = 2
LLAMA_ROPE_THETA = 100000.0  # SmolLM2's value; not the 10000 default, so an adapter cannot assume it
T5_BUCKETS = 8
T5_MAX_DISTANCE = 16
# BERT's usual 0.02 makes every attention row almost uniform in a model this narrow, which would hide
# a wrong scale or a missing rotary step in the neuron self-check. With 0.2 a row's largest weight is
# 1.3x to 4x the uniform one. T5 scales its own init by its sizes and is peaked already: it keeps its default.
INIT_STD = 0.2

# Written for these tests. Varied enough that the trained tokenizers split words into several pieces.
CORPUS = """\
The cat sat on the mat, and the dog lay on the rug by the door.
A small bird sang in the old tree while the children played outside.
Attention lets every token look at every other token in the sentence.
Each layer has several heads, and each head learns its own pattern.
Some heads follow the previous word; others jump to the end of the sentence.
Documentation is easier to trust when its figures are computed from the real model.
The builder runs the model once, keeps the weights in a cache, and serves them again.
If nothing changed, the second build is fast and needs no network at all.
Researchers read these pictures to understand how language models work.
Students use them to learn why a pronoun points back to a noun.
The river flows past the village, under the bridge, and into the sea.
In winter the nights are long, and in summer the evenings are warm and bright.
She wrote three letters, posted two of them, and kept the last one for herself.
He asked whether the train would leave at nine or at ten in the morning.
Numbers such as 1, 2, 3, 42 and 2024 appear in ordinary text as well.
Questions end with a question mark? Exclamations end with a bang!
Quotes can be "double" or 'single', and lists use commas; colons: too.
The quick brown fox jumps over the lazy dog, then runs into the forest.
Translation models read a sentence in one language and write it in another.
The encoder reads the source, the decoder writes the target, and cross attention joins them.
A causal model only looks backwards, so each word sees the words before it.
Good tests are small, fast and deterministic, and they fail when something breaks.
We measured the time, checked the shapes, and compared the numbers with care.
Rain fell softly on the roof as the lights of the town went out one by one.
Bread, cheese, apples and tea were waiting on the kitchen table.
Nobody expected the meeting to finish early, but everyone was glad it did.
"""

_SUFFIXES = ("s", "es", "ed", "ing", "er", "est", "ly", "tion", "ment", "ness", "able")


def corpus_lines() -> list[str]:
    """The built-in training corpus, one sentence a line."""
    return [line for line in CORPUS.splitlines() if line.strip()]


def build_tiny_model(family: str, root: Path) -> Path:
    """Write a tiny random model of ``family`` (one of FAMILIES) to ``root / family`` and return that path."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown tiny model family {family!r}; choose one of {', '.join(FAMILIES)}")
    import torch

    out = Path(root) / family
    out.mkdir(parents=True, exist_ok=True)
    # fork_rng: the fixed seed makes the weights reproducible without changing the caller's RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed((FAMILIES + VISION_FAMILIES).index(family))
        model, tokenizer = _BUILDERS[family](out)
        with _quiet_progress_bars():
            model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return out


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    # save_pretrained draws a "Writing model shards" bar for a one-file, sub-millisecond write.
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


# --- tokenizers ---------------------------------------------------------------------------------


def _wordpiece_vocab() -> dict[str, int]:
    """Specials, then single characters (alone and as continuations), suffixes and corpus words."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = string.ascii_lowercase + string.digits + string.punctuation
    tokens += list(chars)
    tokens += [f"##{c}" for c in chars]
    tokens += [f"##{s}" for s in _SUFFIXES]
    words = re.findall(r"[a-z0-9]+", CORPUS.lower())
    tokens += sorted(set(words) - set(tokens))
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}


def _byte_level_bpe(special_tokens: list[str], vocab_size: int = 512) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE on the corpus; specials get the first ids, in the order given."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        # All 256 byte symbols, not only those in the corpus: this is what makes any text encodable.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_lines(), trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def _sentencepiece_unigram(vocab_size: int = 320) -> bytes:
    """Train a unigram SentencePiece model on the corpus with T5's ids: <pad>=0, </s>=1, <unk>=2."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()),
        model_writer=buffer,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # the corpus is too small to promise an exact size
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        # Identity normalisation: the tokenizers-backed T5Tokenizer then splits text exactly as spm does.
        normalization_rule_name="identity",
        num_threads=1,  # one thread keeps training deterministic
        # Always in the vocabulary, even if the corpus lacks them: every ASCII character and common accents.
        required_chars=string.ascii_letters + string.digits + string.punctuation + "àâäçéèêëîïôöùûüñß",
        minloglevel=2,
    )
    return buffer.getvalue()


def _sentencepiece_pieces(model_proto: bytes) -> list[tuple[str, float]]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=model_proto)
    return [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]


def _bert_tokenizer(cls_name: str = "BertTokenizer") -> Any:
    import transformers

    return getattr(transformers, cls_name)(vocab=_wordpiece_vocab(), do_lower_case=True, model_max_length=MAX_POSITIONS)


def _roberta_tokenizer() -> Any:
    from transformers import RobertaTokenizer

    vocab, merges = _byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_POSITIONS)


# --- models ---------------------------------------------------------------------------------------


def _build_bert(out: Path) -> tuple[Any, Any]:
    from transformers import BertConfig, BertModel

    tokenizer = _bert_tokenizer()
    config = BertConfig(**_bert_sizes(tokenizer), pad_token_id=tokenizer.pad_token_id)
    return BertModel(config), tokenizer


def _bert_sizes(tokenizer: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": HIDDEN_SIZE,
        "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": NUM_HEADS,
        "intermediate_size": FFN_SIZE,
        "max_position_embeddings": MAX_POSITIONS,
        "type_vocab_size": 2,
        "initializer_range": INIT_STD,
    }


def _build_roberta(out: Path) -> tuple[Any, Any]:
    from transformers import RobertaConfig, RobertaModel

    tokenizer = _roberta_tokenizer()
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        intermediate_size=FFN_SIZE,
        # RoBERTa numbers positions from pad_token_id + 1, so it needs two more than the text length.
        max_position_embeddings=MAX_POSITIONS + 2,
        type_vocab_size=1,
        initializer_range=INIT_STD,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return RobertaModel(config), tokenizer


def _build_distilbert(out: Path) -> tuple[Any, Any]:
    from transformers import DistilBertConfig, DistilBertModel

    tokenizer = _bert_tokenizer("DistilBertTokenizer")
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=HIDDEN_SIZE,
        n_layers=NUM_LAYERS,
        n_heads=NUM_HEADS,
        hidden_dim=FFN_SIZE,
        max_position_embeddings=MAX_POSITIONS,
        initializer_range=INIT_STD,
        pad_token_id=tokenizer.pad_token_id,
    )
    return DistilBertModel(config), tokenizer


def _build_electra(out: Path) -> tuple[Any, Any]:
    from transformers import ElectraConfig, ElectraModel

    tokenizer = _bert_tokenizer()
    # Embeddings narrower than the hidden size, as in real ELECTRA-small: exercises the projection.
    config = ElectraConfig(
        **_bert_sizes(tokenizer), embedding_size=HIDDEN_SIZE // 2, pad_token_id=tokenizer.pad_token_id
    )
    return ElectraModel(config), tokenizer


def _build_gpt2(out: Path) -> tuple[Any, Any]:
    from transformers import GPT2Config, GPT2Model, GPT2Tokenizer

    vocab, merges = _byte_level_bpe(["<|endoftext|>"])
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=MAX_POSITIONS)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=MAX_POSITIONS,
        n_embd=HIDDEN_SIZE,
        n_layer=NUM_LAYERS,
        n_head=NUM_HEADS,
        n_inner=FFN_SIZE,
        initializer_range=INIT_STD,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return GPT2Model(config), tokenizer


def _build_llama(out: Path) -> tuple[Any, Any]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    vocab, merges = _byte_level_bpe(["<s>", "</s>"])
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    # Not LlamaTokenizer: in transformers 5 that class is SentencePiece-style (Metaspace). A byte-level
    # tokenizer.json with the generic class is how Llama 3 and SmolLM2 ship; add_bos_token makes the
    # post-processor put <s> first (and before text B of a pair).
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        add_bos_token=True,
        add_eos_token=False,
        model_max_length=MAX_POSITIONS,
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=FFN_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=LLAMA_KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        rope_parameters={"rope_type": "default", "rope_theta": LLAMA_ROPE_THETA},
        initializer_range=INIT_STD,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaModel(config), tokenizer


def _build_t5(out: Path) -> tuple[Any, Any]:
    from transformers import T5Config, T5Model, T5Tokenizer

    tokenizer = T5Tokenizer(
        vocab=_sentencepiece_pieces(_sentencepiece_unigram()), extra_ids=4, model_max_length=MAX_POSITIONS
    )
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=HIDDEN_SIZE,
        d_kv=HEAD_DIM,
        d_ff=FFN_SIZE,
        num_layers=NUM_LAYERS,
        num_decoder_layers=NUM_LAYERS,
        num_heads=NUM_HEADS,
        relative_attention_num_buckets=T5_BUCKETS,
        relative_attention_max_distance=T5_MAX_DISTANCE,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5Model(config), tokenizer


def _build_bart(out: Path) -> tuple[Any, Any]:
    from transformers import BartConfig, BartModel

    tokenizer = _roberta_tokenizer()
    config = BartConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_POSITIONS,
        **_seq2seq_sizes(),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,  # BART starts decoding from </s>
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    return BartModel(config), tokenizer


def _seq2seq_sizes() -> dict[str, Any]:
    return {
        "d_model": HIDDEN_SIZE,
        "encoder_layers": NUM_LAYERS,
        "decoder_layers": NUM_LAYERS,
        "encoder_attention_heads": NUM_HEADS,
        "decoder_attention_heads": NUM_HEADS,
        "encoder_ffn_dim": FFN_SIZE,
        "decoder_ffn_dim": FFN_SIZE,
        "init_std": INIT_STD,
    }


def _build_marian(out: Path) -> tuple[Any, Any]:
    from transformers import MarianConfig, MarianModel, MarianTokenizer

    model_proto = _sentencepiece_unigram()
    # Marian's vocab.json is its own id space over the spm pieces: </s>=0, <unk>=1, ..., <pad> last.
    pieces = [piece for piece, _ in _sentencepiece_pieces(model_proto) if piece not in ("<pad>", "</s>", "<unk>")]
    vocab = {token: i for i, token in enumerate(["</s>", "<unk>", *pieces, "<pad>"])}
    (out / "source.spm").write_bytes(model_proto)
    (out / "target.spm").write_bytes(model_proto)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    tokenizer = MarianTokenizer(
        source_spm=str(out / "source.spm"),
        target_spm=str(out / "target.spm"),
        vocab=str(out / "vocab.json"),
        model_max_length=MAX_POSITIONS,
    )
    config = MarianConfig(
        vocab_size=len(vocab),
        max_position_embeddings=MAX_POSITIONS,
        **_seq2seq_sizes(),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,  # Marian starts decoding from <pad>
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    return MarianModel(config), tokenizer


def _build_bert2bert(out: Path) -> tuple[Any, Any]:
    from transformers import BertConfig, BertLMHeadModel, BertModel, EncoderDecoderModel

    tokenizer = _bert_tokenizer()
    sizes = _bert_sizes(tokenizer)
    encoder = BertModel(BertConfig(**sizes, pad_token_id=tokenizer.pad_token_id))
    decoder = BertLMHeadModel(
        BertConfig(**sizes, pad_token_id=tokenizer.pad_token_id, is_decoder=True, add_cross_attention=True)
    )
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    # Without these an EncoderDecoderModel cannot shift labels or start decoding; [CLS] starts, as in bert2bert.
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.sep_token_id
    return model, tokenizer


def _vision_sizes() -> dict[str, Any]:
    return {
        "image_size": VISION_IMAGE_SIZE,
        "patch_size": VISION_PATCH_SIZE,
        "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": VISION_HEADS,
        "hidden_size": HIDDEN_SIZE,
        "intermediate_size": FFN_SIZE,
        "initializer_range": INIT_STD,
        "attn_implementation": "eager",
    }


def _image_processor() -> Any:
    from transformers import ViTImageProcessorPil  # the Pillow processor: no torchvision needed

    return ViTImageProcessorPil(size={"height": VISION_IMAGE_SIZE, "width": VISION_IMAGE_SIZE})


def _build_vit(out: Path) -> tuple[Any, Any]:
    from transformers import ViTConfig, ViTModel

    return ViTModel(ViTConfig(**_vision_sizes())), _image_processor()


def _build_deit(out: Path) -> tuple[Any, Any]:
    from transformers import DeiTConfig, DeiTModel

    return DeiTModel(DeiTConfig(**_vision_sizes())), _image_processor()


_BUILDERS: dict[str, Callable[[Path], tuple[Any, Any]]] = {
    "vit": _build_vit,
    "deit": _build_deit,
    "bert": _build_bert,
    "roberta": _build_roberta,
    "distilbert": _build_distilbert,
    "electra": _build_electra,
    "gpt2": _build_gpt2,
    "llama": _build_llama,
    "t5": _build_t5,
    "bart": _build_bart,
    "marian": _build_marian,
    "bert2bert": _build_bert2bert,
}
