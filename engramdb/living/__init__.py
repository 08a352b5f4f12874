"""Living memory: what a memory's use and time do to it (vitals, states). Pure decisions
here; the stores execute them and the lifecycle lanes schedule them."""
