"""Developer tools: synthesis (``tools.synth_ecp5``), benchmarks (``tools.bench``), scripts."""
