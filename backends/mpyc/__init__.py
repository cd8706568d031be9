"""sqlmpc.backends.mpyc"""
