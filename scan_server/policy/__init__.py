"""The learned policy: convolutional autoencoder (encoder), GRU policy, checkpoints."""
