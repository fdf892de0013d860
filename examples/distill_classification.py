"""Distil a sequence classifier into UNO-EELBERT (every TrainingArguments flag works; docs/distill.md).

A teacher you have (any AutoModelForSequenceClassification folder or Hub name, with its own tokenizer), here
the classifier bundled with the package, distilled on Rotten Tomatoes plus augmented copies (minutes on 2 CPU
cores):
    python examples/distill_classification.py --teacher src/eelbert_hf/data/uno-rt \
        --train_files ../shared/data/sentiment/rotten_tomatoes/train.jsonl \
        --validation_files ../shared/data/sentiment/rotten_tomatoes/validation.jsonl \
        --augment mask,ngram --augment_copies 5 --num_train_epochs 2 --output_dir out/uno-distilled

A teacher outside transformers: --teacher_column COLUMN (its logits, or --teacher_outputs probabilities).
Writes the student, its tokenizer and the Hub files, metrics.json and the cached teacher outputs
(transfer_set/) to --output_dir; --resume true continues without calling the teacher again.
"""

import sys

from eelbert_hf.apps.cli import main

if __name__ == "__main__":
    main(["distill", *sys.argv[1:]])
