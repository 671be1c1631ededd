"""The live view of a run: the board fed each closed interval, the dashboard's web server
and /metrics, and the terminal's progress line. Above reports (it shows the verdict and
the summary as they form); nothing below imports it."""
