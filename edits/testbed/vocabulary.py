"""The testbed's word/syllable vocabulary and its Hugging Face tokenizer (offline, WordLevel)."""

from pathlib import Path

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]

STRUCTURE = ["lives", "in", ".", "Q:", "where", "does", "live", "?", "A:", "context:", "secret:",
             "seq:"]  # fmt: skip

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
NAME_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]
"""Names are two syllables, so held-out names are new combinations of trained tokens."""

CITIES = [
    name.capitalize()
    for name in (
        "bardo mirt dask olven tarsk wendle quorl hasp lunet brisk coram fenwick galt helm "
        "isken jorvik kelp lorn marrow nesk orrin pell quill rusk sable tolm umber vasq wick "
        "yarrow zell ashby brook crane delf esker fallow gorse holt ivel"
    ).split()
]

CANARY_ALPHABET = [f"c{i:02d}" for i in range(64)]

DETERMINERS = ["the", "a", "every", "one"]
ADJECTIVES = "red small old quick quiet brave green tall dark happy".split()
NOUNS = "fox dog bird king farmer river horse child tree ship stone baker".split()
VERBS = "sees likes finds follows helps carries watches meets".split()
PREPOSITIONS = ["near", "under", "with", "behind"]
CONJUNCTIONS = ["and", "but"]
GRAMMAR_WORDS = DETERMINERS + ADJECTIVES + NOUNS + VERBS + PREPOSITIONS + CONJUNCTIONS


def numbers(modulus: int) -> list[str]:
    return [str(i) for i in range(modulus)]


def vocabulary(modulus: int) -> list[str]:
    words = (
        SPECIALS + STRUCTURE + numbers(modulus) + NAME_SYLLABLES + CITIES + CANARY_ALPHABET
        + GRAMMAR_WORDS
    )  # fmt: skip
    if len(set(words)) != len(words):
        raise ValueError("the testbed vocabulary has duplicate words")
    return words


def build_tokenizer(words: list[str]):  # -> PreTrainedTokenizerFast
    """Whitespace-split word-level tokenizer that prepends <bos>, usable offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: index for index, word in enumerate(words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK
    )


def save_tokenizer(words: list[str], directory: Path) -> None:
    build_tokenizer(words).save_pretrained(directory)
