"""River models: sentiment, engagement.  Each learns online and reports test-then-train quality."""
