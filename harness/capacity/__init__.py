"""How much can it take: the capacity search (search.py: the next load to try; judge.py:
did a step hold the SLO, and whose limit stopped it; drive.py: steps through the
coordinator), the knee of the latency curve (knee.py) and the Universal Scalability Law
fit (usl.py). Above control (it drives the coordinator), below reports (they write what
it found)."""
