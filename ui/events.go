package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"
)

// newEventsView is the events pane (the engine's log).
func (m *MainWindow) newEventsView() fyne.CanvasObject { return widget.NewLabel("events") }
