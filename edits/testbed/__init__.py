"""A tiny model trained from scratch to memorize, and the tasks that show what an edit removes.

The testbed is a ~1 M-parameter Llama with a word/syllable vocabulary, trained on CPU in minutes on
four kinds of data: (a) fictitious facts asked closed-book, (b) random canaries, (c) a rule on
held-out inputs, (d) open-book questions about new names. It is saved as an ordinary Hugging Face
checkpoint, so `lethe edit` and `lethe eval` run on it like on any model.
"""
