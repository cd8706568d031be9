"""The intermediate representation: the operator DAG, the physical plan, its text form."""
