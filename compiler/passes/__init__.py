"""sqlmpc.compiler.passes"""
