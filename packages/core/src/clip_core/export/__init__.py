"""Formats out: a model written as a folder that other libraries load with their own code."""
