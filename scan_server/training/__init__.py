"""Training the policy: environment (recordings as microscopes), rewards, the three stages."""
