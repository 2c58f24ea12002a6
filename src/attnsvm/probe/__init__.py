"""Probe pretrained transformers: does each head's key-query form match its Att-SVM?"""
