"""A third-party plugin for clip-sdk's tests: toy towers, a byte-level tokenizer and three card files."""
