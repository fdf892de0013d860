"""Fine-tune EELBERT for sequence classification (run_glue.py-style; every TrainingArguments flag works).

Rotten Tomatoes from the shared data (minutes on 2 CPU cores), starting from an MLM checkpoint:
    python examples/finetune_classification.py --model_name_or_path out/uno-mlm \
        --train_files ../shared/data/sentiment/rotten_tomatoes/train.jsonl \
        --validation_files ../shared/data/sentiment/rotten_tomatoes/validation.jsonl \
        --num_train_epochs 3 --output_dir out/uno-rt

A GLUE task (needs the Hub): --dataset_name glue --dataset_config_name sst2 (cola adds Matthews
correlation, stsb is regression with Pearson/Spearman). Sentence pairs from files: --text_pair_column.
Writes the model, its tokenizer and the Hub files, and metrics.json (accuracy, F1) to --output_dir.
Real budgets: --num_train_epochs 3-5, --learning_rate 5e-5 (base) to 5e-4 (uno/tiny), batch 32.
"""

import sys

from eelbert_hf.apps.cli import main

if __name__ == "__main__":
    main(["finetune", *sys.argv[1:]])
