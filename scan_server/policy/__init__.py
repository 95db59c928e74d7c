"""The learned policy: convolutional autoencoder (encoder), GRU policy, checkpoints."""

#: the shipped model (in models/) the server, the demo and the replay client use unless told otherwise
DEFAULT_MODEL = "mos2-cpu-v3"
