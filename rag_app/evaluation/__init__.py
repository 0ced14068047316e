"""Measuring the app: retrieval hit@k on SQuAD-style sets, answer metrics, LLM judges, run records.

`retrieval` runs `eval squad` / `eval pairs`, `answers` generates and scores answers with
`metrics` (EM/F1, BLEU, chrF, ROUGE, similarity) and `judge` (the RAG triad), `pairwise`
compares two runs, `datasets` reads answer-eval files, `runs` records and diffs runs and
`wandb_log` sends them to Weights & Biases.
Sits above `rag_app.app` (it drives a `RagApp`); only `rag_app.cli` imports it.
"""
