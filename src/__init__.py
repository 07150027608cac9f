"""llamanuts: Llama inference in readable Python, traced stage by stage."""
