"""Text metrics for VQA answers: BLEU (sacrebleu), ROUGE (rouge-score), METEOR (NLTK), BERTScore."""
