"""The augmentation parameters as stored (builder.rows.augment.Augmentation): names and column types. A leaf
that imports nothing, so the renderer (and its worker processes, which must not load `datasets`) can name the
cut-out's part without importing the schema."""

# The background's, once per composite; then the cut-out's, which every entry of `objects` also holds for its own
# cut-out. Their columns come in this order, after the placement columns.
BACKGROUND_AUGMENT_FIELDS = (("bg_brightness", "float32"), ("bg_contrast", "float32"), ("bg_saturation", "float32"),
                             ("bg_hue", "float32"), ("bg_dx", "int32"), ("bg_dy", "int32"),
                             ("bg_blur_radius", "float32"), ("bg_noise_sigma", "float32"), ("noise_seed", "int64"))
OBJECT_AUGMENT_FIELDS = (("fg_angle", "float32"), ("fg_brightness", "float32"), ("fg_contrast", "float32"),
                         ("fg_saturation", "float32"), ("fg_hue", "float32"), ("harmonize_strength", "float32"),
                         ("blend", "string"), ("feather_sigma", "float32"), ("motion_length", "int32"),
                         ("motion_angle", "float32"), ("shadow_opacity", "float32"), ("shadow_dx", "int32"),
                         ("shadow_dy", "int32"), ("shadow_sigma", "float32"))
