"""What a prompt is trained and read for: the :class:`~probe.tasks.base.Task` contract, one task per model kind
(:mod:`.kinds`), users' heads and scoring functions (:mod:`.user`), the task forms' names (:mod:`.forms`) and
evaluation (:mod:`.evaluation`). Training and the readings both stand on this layer; neither imports the other."""
