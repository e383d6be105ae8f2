"""Small models: an LSTM keyword spotter and a tiny CNN for 8x8 digits."""

from __future__ import annotations

from torch import Tensor, nn

from hwsim.zoo._blocks import conv_bn, init_weights


class LSTMKeywordSpotter(nn.Module):
    """Stacked LSTM over (batch, seq, features) frames; classifies from the last time step.

    Defaults follow the LSTM keyword-spotting setup of Zhang et al., "Hello Edge" (2017): 12 classes of
    Speech Commands over 49 frames; here 40 log-mel features, 2 layers x 256 hidden.
    """

    def __init__(self, *, features: int = 40, hidden: int = 256, layers: int = 2, num_classes: int = 12) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class DigitsCNN(nn.Module):
    """Three conv-BN-ReLU layers and two FCs for 1x8x8 images (sklearn ``load_digits``)."""

    def __init__(self, *, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(1, width, 3), conv_bn(width, 2 * width, 3), nn.MaxPool2d(2),
            conv_bn(2 * width, 4 * width, 3), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * width * 4, 64), nn.ReLU(inplace=True),
                                        nn.Linear(64, num_classes))
        init_weights(self)
        for module in self.classifier:   # the default small-normal FC init trains slowly on digits
            if isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def lstm_kws(*, features: int = 40, hidden: int = 256, layers: int = 2, num_classes: int = 12) -> LSTMKeywordSpotter:
    """2-layer, 256-hidden LSTM keyword spotter; input (batch, 49, 40)."""
    return LSTMKeywordSpotter(features=features, hidden=hidden, layers=layers, num_classes=num_classes)


def digits_cnn(*, width: int = 16, num_classes: int = 10) -> DigitsCNN:
    """Tiny CNN for 8x8 digits."""
    return DigitsCNN(width=width, num_classes=num_classes)
