"""sqlmpc.backends.spark"""
