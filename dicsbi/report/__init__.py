"""What a person reads: the HTML report page (:mod:`.page`) and the figures (:mod:`.figures`)."""
