"""sqlmpc.backends"""
