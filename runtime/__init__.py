"""sqlmpc.runtime"""
