"""The placement rules' names and the fields their rows add (the rules themselves: builder.rows.placement). A leaf
that imports nothing, so the settings and the renderer (whose worker processes must not load `datasets`) can name
them without importing the schema."""

PLACEMENT_MODES = ("uniform", "ground", "physical")  # --placement-mode: one rule each
# the rules that stand a cut-out on the background's ground: their rows say where it stands and what hides it
STANDING_MODES = ("ground", "physical")
# A placed cut-out's own fields, (name, type, the rules that give it): columns of its row (the row's cut-out) and
# fields of each entry of `objects`.
PLACED_FIELDS = (("foot_x", "int32", STANDING_MODES), ("foot_y", "int32", STANDING_MODES),
                 ("height_m", "float32", ("physical",)))
