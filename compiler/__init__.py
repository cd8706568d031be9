"""sqlmpc.compiler"""
