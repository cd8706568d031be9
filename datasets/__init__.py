"""sqlmpc.datasets"""
