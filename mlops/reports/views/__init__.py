"""Display-only values of each report (tables, cards, inline SVG charts), one module per
report: the actions hand their JSON result here and pass what comes back to the template
as its context. Nothing here is part of the machine-readable result."""
