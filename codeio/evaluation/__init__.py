"""Benchmark evaluation: read CRUXEval / LeetCode-O / unified files into questions
(instance records, so the pipeline's synthesize stage answers them), judge the
answers with the pipeline's extraction and verification, and score them."""
