"""The placement rules' names and the fields their rows add (the rules themselves: builder.rows.placement). A leaf
that imports nothing, so the settings and the renderer (whose worker processes must not load `datasets`) can name
them without importing the schema."""

PLACEMENT_MODES = ("uniform", "ground")  # --placement-mode: one rule each
STANDING_MODES = ("ground",)  # the rules that stand a cut-out on the background's ground: a foot, what hides it
# A placed cut-out's own fields, (name, type, the rules that give it): columns of its row (the row's cut-out) and
# fields of each entry of `objects`.
PLACED_FIELDS = (("foot_x", "int32", STANDING_MODES), ("foot_y", "int32", STANDING_MODES))
